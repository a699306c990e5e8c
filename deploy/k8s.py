"""Kubernetes manifests for one tritonserver Deployment serving a model repository.

Pure functions of a DeployTarget: the tritonserver arguments come in ready-made
(deploy/target.py builds them with server/options.tritonserver_args, the same function
`serve`, `serve --docker` and `docker build` use).
"""

import math
import re
from dataclasses import dataclass, field

from tritonize.adapter.autoscaling_spec import Autoscaling, UpdateStrategy
from tritonize.adapter.runtime.constants import (
    ADMIN_TOKEN_ENV,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORTS,
    IMAGE_JOB_STORE,
)
from tritonize.batch.store import JOB_STORE_ENV
from tritonize.deploy.autoscalers import (
    HPA_PERIOD_S,
    INFLIGHT_METRIC,
    INFLIGHT_SOURCE_METRIC,
    hpa_behavior,
    target_quantity,
)
from tritonize.deploy.liveness import liveness_command
from tritonize.errors import SpecError
from tritonize.server.container import DRAIN_NOTICE_ENV, HEALTH_PORT

# The Service port of the Cortex endpoint: http://<service>/<api>, one endpoint per API, as Cortex's
# load balancer gave (type LoadBalancer, or an Ingress to this port, for outside clients).
CORTEX_SERVICE_PORT = 80

PORTS = DEFAULT_PORTS  # the container listens on Triton's defaults
LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
PRESTOP_SLEEP_S = 5  # lets Services/load balancers drop the pod before Triton stops accepting
# The user the containers run as: the official Triton image's own non-root user (triton-server, 1000);
# any uid works for an image from `tritonize docker build` (its files are world-readable).
RUN_AS_USER = 1000
GRACE_MARGIN_S = 10
PROBE_PERIOD_S = 10
# Kubernetes' autoscaling/v2 schemas this release validates against (tests/test_k8s_manifests.py).
KUBERNETES_VERSIONS = ("1.25", "1.37")  # the schemas kubernetes-validate bundles
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
AUTOSCALERS = ("hpa", "keda", "none")


@dataclass
class DeployTarget:
    name: str
    image: str
    args: list  # tritonserver's arguments (after the `tritonserver` command)
    env: dict = field(default_factory=dict)
    namespace: str | None = None
    gpu: int = 0
    cpu: str | None = None  # Kubernetes quantities (requests)
    mem: str | None = None
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    update_strategy: UpdateStrategy = field(default_factory=UpdateStrategy)
    shm_size: str = "1Gi"
    exit_timeout_s: int = 10
    startup_timeout_s: int = 600
    autoscaler: str = "hpa"
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    service_type: str = "ClusterIP"
    env_from_secret: str | None = None  # e.g. object-store credentials for --model-store
    # Secret holding the admin token (key "token"); args refer to it as $(TRITONIZE_ADMIN_TOKEN),
    # which Kubernetes expands from the container's environment.
    admin_token_secret: str | None = None
    # The Cortex endpoint (POST /<api>) as a sidecar from the same image (one built by `tritonize
    # docker build`, which holds cortex_endpoint/); None: no sidecar (a stock image with --model-store).
    cortex_port: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # A repository with a BatchAPI: its jobs live in the job store, a PersistentVolumeClaim of this size
    # mounted in the one replica that owns them (docs/kubernetes.md); None: no BatchAPI, no store.
    job_store_size: str | None = None

    @property
    def job_store_claim(self):
        return f"{self.name}-jobs"

    @property
    def resources(self):
        """Requests from compute.cpu/mem; limits: memory = compute.mem (the pod is OOM-killed past what it
        asked for, not the node), GPUs = compute.gpu; no CPU limit (throttling adds latency, and
        requests already decide the share under contention)."""
        resources = {}
        requests = {k: v for k, v in (("cpu", self.cpu), ("memory", self.mem)) if v}
        if requests:
            resources["requests"] = requests
        limits = {k: v for k, v in (("memory", self.mem), ("nvidia.com/gpu", self.gpu)) if v}
        if limits:
            resources["limits"] = limits
        return resources

    @property
    def supervised(self):
        """An image from `tritonize docker build`: its entrypoint is tritonize's supervisor (server/container.py)."""
        return self.cortex_port is not None

    @property
    def env_list(self):
        env = [{"name": k, "value": v} for k, v in sorted(self.env.items())]
        if self.admin_token_secret:
            env.append(
                {
                    "name": ADMIN_TOKEN_ENV,
                    "valueFrom": {"secretKeyRef": {"name": self.admin_token_secret, "key": "token"}},
                }
            )
        return env

    @property
    def grace_period_s(self):
        """Longer than the drain: the preStop pause (the supervisor's drain notice in a built image)
        plus Triton's --exit-timeout-secs."""
        return PRESTOP_SLEEP_S + self.exit_timeout_s + GRACE_MARGIN_S

    @property
    def inflight_metric(self):
        return f"{INFLIGHT_METRIC}_{self.autoscaling.window_s}s"


def k8s_name(text, where="--name"):
    name = re.sub(r"[^a-z0-9-]+", "-", str(text).lower()).strip("-")[:63].strip("-")
    if not DNS_LABEL.match(name):
        raise SpecError(f"{where}: {text!r} cannot become a Kubernetes name (lowercase letters, digits, '-')")
    return name


def _labels(t):
    return {"app.kubernetes.io/name": t.name, "app.kubernetes.io/managed-by": "tritonize"}


def _metadata(t, **extra):
    meta = {"name": t.name, "labels": _labels(t), **extra}
    if t.namespace:
        meta["namespace"] = t.namespace
    return meta


def scrape_annotations():
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORTS["metrics"]),
        "prometheus.io/path": "/metrics",
    }


def _probe(path, period, failures, timeout=5, port="http"):
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


TRITONSERVER_COMMAND = ["env", "-u", ADMIN_TOKEN_ENV, "tritonserver"]


# The restricted-API flags that carry the admin token (server/options.py's restricted_api_args).
RESTRICTED_FLAGS = ("--http-restricted-api=", "--grpc-restricted-protocol=")


def security_context():
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities. Triton writes only
    to /dev/shm (its own volume) and the work folder under /tmp (an emptyDir); predictors that write
    files get /tmp (HOME points there) - anything else they write needs a volume of its own."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


VOLUME_MOUNTS = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": "/tmp"}]
JOB_STORE_VOLUME = "jobs"


def volume_mounts(t):
    mounts = list(VOLUME_MOUNTS)
    if t.job_store_size:
        mounts.append({"name": JOB_STORE_VOLUME, "mountPath": IMAGE_JOB_STORE})
    return mounts


def container(t):
    """tritonserver: under tritonize's supervisor in a built image, else the stock image's binary."""
    return supervised_container(t) if t.supervised else stock_container(t)


def supervised_container(t):
    """The built image's entrypoint supervises tritonserver and the Cortex endpoint, as `serve` does: a
    dead instance is reloaded in the container (no restart), an API that fails to load leaves the
    others serving. The probes ask the supervisor (server/container.py: /ready, /live)."""
    ports = {**PORTS, "cortex": t.cortex_port, "health": HEALTH_PORT}
    return {
        "name": "tritonserver",
        "image": t.image,
        # The image's ENTRYPOINT (the supervisor) runs this command line. The admin token is not in it
        # (it would be in /proc/1/cmdline, readable by predictors): the supervisor adds the restricted-API
        # flags from TRITONIZE_ADMIN_TOKEN (the Secret), then blanks it from its own /proc entries.
        "args": ["tritonserver", *(a for a in t.args if not a.startswith(RESTRICTED_FLAGS))],
        "env": t.env_list
        + [
            # Readiness says false this long after SIGTERM while requests are still answered.
            {"name": DRAIN_NOTICE_ENV, "value": str(PRESTOP_SLEEP_S)},
            {"name": "HOME", "value": "/tmp"},
            *([{"name": JOB_STORE_ENV, "value": IMAGE_JOB_STORE}] if t.job_store_size else []),
        ],
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports.items()],
        # Ready = Triton serving the APIs that loaded, not draining; loading may take minutes.
        "startupProbe": _probe(
            "/ready", PROBE_PERIOD_S, max(1, math.ceil(t.startup_timeout_s / PROBE_PERIOD_S)), port="health"
        ),
        # Live = Triton answers and no API is stuck (a dead instance is healed, not a reason to restart).
        "livenessProbe": _probe("/live", PROBE_PERIOD_S, 3, port="health"),
        "readinessProbe": _probe("/ready", 5, 2, port="health"),
        "resources": t.resources,
        "securityContext": security_context(),
        "volumeMounts": volume_mounts(t),
        **({"envFrom": [{"secretRef": {"name": t.env_from_secret}}]} if t.env_from_secret else {}),
    }


def stock_container(t):
    spec = {
        "name": "tritonserver",
        "image": t.image,
        # Not the admin token in Triton's environment (its stubs, the predictors, would inherit it): the
        # kubelet expands $(TRITONIZE_ADMIN_TOKEN) in args from the container's env before `env` drops it.
        "command": TRITONSERVER_COMMAND,
        "args": list(t.args),
        "env": t.env_list + [{"name": "HOME", "value": "/tmp"}],
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in PORTS.items()],
        # Triton answers nothing until every model is loaded: the startup probe allows for that.
        "startupProbe": _probe(LIVE_PATH, PROBE_PERIOD_S, max(1, math.ceil(t.startup_timeout_s / PROBE_PERIOD_S))),
        # /v2/health/live plus "no instance process died" (health/liveness.py): no supervisor runs in a
        # stock image, so a dead instance is healed by restarting the container.
        "livenessProbe": {
            "exec": {"command": liveness_command(PORTS["http"], PORTS["metrics"])},
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "readinessProbe": _probe(READY_PATH, 5, 2),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_S)]}}},
        "resources": t.resources,
        "securityContext": security_context(),
        "volumeMounts": list(VOLUME_MOUNTS),
    }
    if t.env_from_secret:
        spec["envFrom"] = [{"secretRef": {"name": t.env_from_secret}}]
    return spec


def deployment(t):
    pod = {
        "terminationGracePeriodSeconds": t.grace_period_s,
        "containers": [container(t)],
        "securityContext": {"runAsNonRoot": True, "fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [
            # The python backend talks to its stubs through /dev/shm; the runtime default (64 MB) is too small.
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": t.shm_size}},
            # The one writable place besides it (the root filesystem is read-only).
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if t.job_store_size:
        pod["volumes"].append({"name": JOB_STORE_VOLUME, "persistentVolumeClaim": {"claimName": t.job_store_claim}})
    if t.gpu:
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    strategy = {
        "type": "RollingUpdate",
        "rollingUpdate": {
            "maxSurge": t.update_strategy.max_surge,
            "maxUnavailable": t.update_strategy.max_unavailable,
        },
    }
    if t.job_store_size:
        # One replica owns the jobs: a ReadWriteOnce volume, and no second pod running them during an update.
        strategy = {"type": "Recreate"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(t),
        "spec": {
            "replicas": 1 if t.job_store_size else t.autoscaling.init_replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": t.name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": _labels(t), "annotations": scrape_annotations()},
                "spec": pod,
            },
        },
    }


def job_store_claim(t):
    """The BatchAPI job store: ReadWriteOnce, mounted by the Deployment's one replica (jobs survive restarts
    and updates; the replica that starts next resumes them)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(t, name=t.job_store_claim),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": t.job_store_size}}},
    }


def service(t):
    ports = [
        {"name": "http", "port": PORTS["http"], "targetPort": "http", "protocol": "TCP", "appProtocol": "http"},
        {"name": "grpc", "port": PORTS["grpc"], "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
        {"name": "metrics", "port": PORTS["metrics"], "targetPort": "metrics", "protocol": "TCP"},
    ]
    if t.cortex_port:
        ports.append(
            {
                "name": "cortex",
                "port": CORTEX_SERVICE_PORT,
                "targetPort": "cortex",
                "protocol": "TCP",
                "appProtocol": "http",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        # Not annotated for scraping: the pods are (a Service annotation makes Prometheus's
        # endpoints job scrape every pod a second time, and the autoscaler count it twice).
        "metadata": _metadata(t),
        "spec": {"type": t.service_type, "selector": {"app.kubernetes.io/name": t.name}, "ports": ports},
    }


def hpa(t):
    a = t.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(t),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.name},
            "minReplicas": a.min_replicas,
            "maxReplicas": a.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": t.inflight_metric},
                        "target": {"type": "AverageValue", "averageValue": target_quantity(a)},
                    },
                }
            ],
            "behavior": hpa_behavior(a),
        },
    }


def prometheus_adapter_rules(t):
    """Values for the prometheus-adapter Helm chart (`rules.custom`): serves the HPA's Pods metric."""
    return {
        "rules": {
            "custom": [
                {
                    "seriesQuery": f'{INFLIGHT_SOURCE_METRIC}{{namespace!="",pod!=""}}',
                    "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                    "name": {"matches": f"^{INFLIGHT_SOURCE_METRIC}$", "as": t.inflight_metric},
                    "metricsQuery": f"sum(rate(<<.Series>>{{<<.LabelMatchers>>}}[{t.autoscaling.window_s}s])) "
                    "by (<<.GroupBy>>) / 1e6",
                }
            ]
        }
    }


def keda_query(t):
    """Requests in flight in all the Deployment's pods (KEDA's AverageValue divides by the replicas)."""
    selector = f'service="{t.name}"' + (f',namespace="{t.namespace}"' if t.namespace else "")
    return f"sum(rate({INFLIGHT_SOURCE_METRIC}{{{selector}}}[{t.autoscaling.window_s}s])) / 1e6"


def scaled_object(t):
    a = t.autoscaling
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(t),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.name},
            "minReplicaCount": a.min_replicas,
            "maxReplicaCount": a.max_replicas,
            "pollingInterval": HPA_PERIOD_S,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": hpa_behavior(a)}},
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": t.prometheus_url,
                        "query": keda_query(t),
                        "threshold": target_quantity(a),
                    },
                }
            ],
        },
    }


def service_monitor(t):
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(t),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": t.name}},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": f"{HPA_PERIOD_S}s"}],
        },
    }


def render(t):
    """{relative file name: [documents]}: top-level files are for `kubectl apply -f DIR`,
    monitoring/ holds what needs the Prometheus Operator or prometheus-adapter."""
    if t.autoscaler not in AUTOSCALERS:
        raise SpecError(f"--autoscaler: expected one of {', '.join(AUTOSCALERS)}, got {t.autoscaler!r}")
    files = {
        "deployment.yaml": [deployment(t)],
        "service.yaml": [service(t)],
        "monitoring/servicemonitor.yaml": [service_monitor(t)],
    }
    if t.job_store_size:
        files["job-store-pvc.yaml"] = [job_store_claim(t)]
    if t.autoscaler == "hpa":
        files["hpa.yaml"] = [hpa(t)]
        files["monitoring/prometheus-adapter-values.yaml"] = [prometheus_adapter_rules(t)]
    elif t.autoscaler == "keda":
        files["keda-scaledobject.yaml"] = [scaled_object(t)]
    return files
