"""Kubernetes manifests for one tritonserver Deployment serving a model repository.

Pure functions of a DeployTarget: the tritonserver arguments come in ready-made
(deploy/target.py builds them with server/options.tritonserver_args, the same function
`serve`, `serve --docker` and `docker build` use).
"""

import math
import re
from dataclasses import dataclass, field

from tritonize.adapter.autoscaling_spec import Autoscaling, UpdateStrategy
from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORTS
from tritonize.cortex_endpoint.zipapp import container_command
from tritonize.deploy.autoscalers import (
    HPA_PERIOD_S,
    INFLIGHT_METRIC,
    INFLIGHT_SOURCE_METRIC,
    hpa_behavior,
    target_quantity,
)
from tritonize.deploy.liveness import liveness_command
from tritonize.errors import SpecError

# The Service port of the Cortex endpoint: http://<service>/<api>, one endpoint per API, as Cortex's
# load balancer gave (type LoadBalancer, or an Ingress to this port, for outside clients).
CORTEX_SERVICE_PORT = 80
CORTEX_READY_PATH = "/_tritonize/ready"

PORTS = DEFAULT_PORTS  # the container listens on Triton's defaults
LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
PRESTOP_SLEEP_S = 5  # lets Services/load balancers drop the pod before Triton stops accepting
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
    namespace: str = None
    gpu: int = 0
    cpu: str = None  # Kubernetes quantities (requests)
    mem: str = None
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    update_strategy: UpdateStrategy = field(default_factory=UpdateStrategy)
    shm_size: str = "1Gi"
    exit_timeout_s: int = 10
    startup_timeout_s: int = 600
    autoscaler: str = "hpa"
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    service_type: str = "ClusterIP"
    env_from_secret: str = None  # e.g. object-store credentials for --model-store
    # Secret holding the admin token (key "token"); args refer to it as $(TRITONIZE_ADMIN_TOKEN),
    # which Kubernetes expands from the container's environment.
    admin_token_secret: str = None
    # The Cortex endpoint (POST /<api>) as a sidecar from the same image (one built by `tritonize
    # docker build`, which holds cortex_endpoint/); None: no sidecar (a stock image with --model-store).
    cortex_port: int = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @property
    def resources(self):
        """Requests from compute.cpu/mem, the GPU limit from compute.gpu."""
        resources = {}
        requests = {k: v for k, v in (("cpu", self.cpu), ("memory", self.mem)) if v}
        if requests:
            resources["requests"] = requests
        if self.gpu:
            resources["limits"] = {"nvidia.com/gpu": self.gpu}
        return resources

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
        """Longer than the drain: the preStop pause plus Triton's --exit-timeout-secs."""
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


def _probe(path, period, failures, timeout=5):
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


TRITONSERVER_COMMAND = ["env", "-u", ADMIN_TOKEN_ENV, "tritonserver"]


def container(t):
    spec = {
        "name": "tritonserver",
        "image": t.image,
        # Not the admin token in Triton's environment (its stubs, the predictors, would inherit it): the
        # kubelet expands $(TRITONIZE_ADMIN_TOKEN) in args from the container's env before `env` drops it.
        "command": TRITONSERVER_COMMAND,
        "args": list(t.args),
        "env": t.env_list,
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in PORTS.items()],
        # Triton answers nothing until every model is loaded: the startup probe allows for that.
        "startupProbe": _probe(LIVE_PATH, PROBE_PERIOD_S, max(1, math.ceil(t.startup_timeout_s / PROBE_PERIOD_S))),
        # /v2/health/live plus "no instance process died" (adapter/liveness.py): Triton alone
        # keeps a model READY after its stub dies, and nothing in a pod would reload it.
        "livenessProbe": {
            "exec": {"command": liveness_command(PORTS["http"], PORTS["metrics"])},
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "readinessProbe": _probe(READY_PATH, 5, 2),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_S)]}}},
        "resources": t.resources,
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    if t.env_from_secret:
        spec["envFrom"] = [{"secretRef": {"name": t.env_from_secret}}]
    return spec


def cortex_container(t):
    """The front beside tritonserver: ready when Triton is (it asks it), stopped with the pod."""
    return {
        "name": "cortex",
        "image": t.image,
        "command": container_command(t.cortex_port, t.max_body_bytes),
        "ports": [{"name": "cortex", "containerPort": t.cortex_port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": CORTEX_READY_PATH, "port": "cortex"},
            "periodSeconds": 5,
            "failureThreshold": 2,
            "timeoutSeconds": 5,
        },
        "livenessProbe": {"tcpSocket": {"port": "cortex"}, "periodSeconds": PROBE_PERIOD_S, "failureThreshold": 3},
        # Same drain as tritonserver's: Services drop the pod first.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_S)]}}},
    }


def deployment(t):
    pod = {
        "terminationGracePeriodSeconds": t.grace_period_s,
        "containers": [container(t)] + ([cortex_container(t)] if t.cortex_port else []),
        # The python backend talks to its stubs through /dev/shm; the runtime default (64 MB) is too small.
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": t.shm_size}}],
    }
    if t.gpu:
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(t),
        "spec": {
            "replicas": t.autoscaling.init_replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": t.name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": t.update_strategy.max_surge,
                    "maxUnavailable": t.update_strategy.max_unavailable,
                },
            },
            "template": {
                "metadata": {"labels": _labels(t), "annotations": scrape_annotations()},
                "spec": pod,
            },
        },
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
    if t.autoscaler == "hpa":
        files["hpa.yaml"] = [hpa(t)]
        files["monitoring/prometheus-adapter-values.yaml"] = [prometheus_adapter_rules(t)]
    elif t.autoscaler == "keda":
        files["keda-scaledobject.yaml"] = [scaled_object(t)]
    return files
