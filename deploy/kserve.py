"""A KServe InferenceService on KServe's Triton runtime (`kserve-tritonserver`).

The runtime starts `tritonserver --model-store=/mnt/models --grpc-port=9000 --http-port=8080
--allow-grpc=true --allow-http=true` and appends the model's `args`: tritonize passes the same
flags as `serve` minus the ones the runtime owns. Autoscaling is KServe's own (Knative's
concurrency autoscaler in the default Serverless mode), mapped from Cortex's fields.
"""

import math

from tritonize.deploy.k8s import DeployTarget, security_context
from tritonize.server.container import CORTEX_PORT_ENV

# Flags KServe's Triton runtime sets itself: the repository it downloaded and its ports.
RUNTIME_OWNED = (
    "--model-repository=",
    "--model-store=",
    "--http-port=",
    "--grpc-port=",
    "--http-address=",
    "--grpc-address=",
)
RUNTIME = "kserve-tritonserver"
KNATIVE = "autoscaling.knative.dev/"


def runtime_args(args):
    return [a for a in args if not a.startswith(RUNTIME_OWNED)]


def knative_annotations(a):
    """Cortex autoscaling -> Knative Pod Autoscaler annotations (Serverless mode)."""
    return {
        KNATIVE + "window": f"{a.window_s}s",
        KNATIVE + "initial-scale": str(a.init_replicas),
        # Knative's rates are ratios per evaluation: 1.5 = may grow to 1.5x, 1/0.75 = may shrink to 0.75x.
        KNATIVE + "max-scale-up-rate": f"{1 + a.max_upscale_percent / 100:g}",
        KNATIVE + "max-scale-down-rate": f"{1 / (1 - a.max_downscale_percent / 100):.4g}",
        KNATIVE + "scale-down-delay": f"{a.downscale_stabilization_s}s",
    }


def inference_service(t: DeployTarget, storage_uri):
    """-> (InferenceService dict, warnings)."""
    a = t.autoscaling
    warnings = []
    target = max(1, math.ceil(a.target_replica_concurrency))
    if target != a.target_replica_concurrency:
        warnings.append(
            f"autoscaling.target_replica_concurrency {a.target_replica_concurrency:g}: KServe's "
            f"scaleTarget is a whole number, written as {target}"
        )
    warnings.append(
        "autoscaling.upscale_stabilization_period: Knative has no equivalent (it reacts within its "
        "window, with a 6 s panic window); not written"
    )
    if a.upscale_tolerance is not None or a.downscale_tolerance is not None:
        warnings.append("autoscaling.*_tolerance: Knative has no equivalent; not written")
    model = {
        "modelFormat": {"name": "triton"},
        "runtime": RUNTIME,
        "storageUri": storage_uri,
        "args": runtime_args(t.args),
        "env": t.env_list,
        "resources": t.resources,
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    if t.image:
        # e.g. from `tritonize docker build`, for the predictors' dependencies. The runtime passes its
        # tritonserver command line as args: the image's supervisor runs it (the watchdog heals dead
        # instances); the Cortex endpoint stays off (its port 8080 is KServe's HTTP port).
        model["image"] = t.image
        model["env"] = model["env"] + [{"name": CORTEX_PORT_ENV, "value": "off"}]
    # Triton's own needs: /dev/shm (the volume above) and a writable /tmp (KServe's storage
    # initializer puts the repository in /mnt/models, its own volume).
    model["securityContext"] = security_context()
    model["volumeMounts"].append({"name": "tmp", "mountPath": "/tmp"})
    metadata = {
        "name": t.name,
        "labels": {"app.kubernetes.io/managed-by": "tritonize"},
        "annotations": {**knative_annotations(a), "serving.kserve.io/deploymentMode": "Serverless"},
    }
    if t.namespace:
        metadata["namespace"] = t.namespace
    service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {
            "predictor": {
                "minReplicas": a.min_replicas,
                "maxReplicas": a.max_replicas,
                "scaleMetric": "concurrency",
                "scaleTarget": target,
                "timeout": 60,
                "model": model,
                "volumes": [
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": t.shm_size}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            }
        },
    }
    return service, warnings
