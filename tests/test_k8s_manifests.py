"""`tritonize deploy`: manifests validate against Kubernetes' own schemas and carry the settings that matter."""

import dataclasses
import json
import os
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from conftest import TESTS_DIR

from tritonize.cli.main import cli
from tritonize.deploy.k8s import KUBERNETES_VERSIONS, PORTS
from tritonize.deploy.target import deploy_k8s, deploy_kserve
from tritonize.errors import SpecError
from tritonize.server.options import ServerOptions, runtime_environment, tritonserver_args

EXAMPLE = os.path.join(os.path.dirname(TESTS_DIR), "examples", "echo", "predictor.py")
CRD_VALIDATORS = os.path.join(TESTS_DIR, "data", "crd_validators")

SPEC = """
- name: text
  predictor: {type: python, path: predictor.py, processes_per_replica: 2}
  compute: {cpu: 1, mem: 2Gi, gpu: 1}
  autoscaling:
    min_replicas: 2
    max_replicas: 12
    init_replicas: 3
    target_replica_concurrency: 4
    window: 2m
    upscale_stabilization_period: 30s
    downscale_stabilization_period: 10m
    max_upscale_factor: 3
    max_downscale_factor: 0.5
  update_strategy: {max_surge: 1, max_unavailable: 0}
- name: side
  predictor: {type: python, path: predictor.py}
  compute: {cpu: 500m, mem: 512Mi}
"""


def _versions():
    lo, hi = (int(v.split(".")[1]) for v in KUBERNETES_VERSIONS)
    return [f"1.{minor}" for minor in range(lo, hi + 1)]


@pytest.fixture
def spec(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "predictor.py")
    (tmp_path / "cortex.yaml").write_text(SPEC)
    return str(tmp_path / "cortex.yaml")


def load(directory, name):
    with open(os.path.join(directory, name)) as f:
        return list(yaml.safe_load_all(f))


def manifests(directory):
    docs = {}
    for root, _, files in os.walk(directory):
        for name in files:
            for doc in load(root, name):
                docs[doc.get("kind", name)] = doc
    return docs


def test_every_manifest_validates_against_kubernetes_schemas(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, image="registry.example/text:1", namespace="ml")
    docs = manifests(out)
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "ServiceMonitor"} <= set(docs)
    for version in _versions():
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler"):
            # strict: unknown fields are errors too; raises ValidationError on any schema error
            kubernetes_validate.validate(docs[kind], version, strict=True)


def test_a_broken_manifest_is_caught_by_the_schema(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, image="i:1")
    deployment = manifests(out)["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[1], strict=True)


def test_container_runs_exactly_what_serve_runs(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, image="registry.example/text:1")
    container = manifests(out)["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    options = ServerOptions(str(tmp_path))
    inside = dataclasses.replace(
        options,
        host="0.0.0.0",
        http_port=8000,
        grpc_port=8001,
        metrics_port=8002,
        admin_token="$(TRITONIZE_ADMIN_TOKEN)",
    )
    # A built image: the image's ENTRYPOINT (tritonize's supervisor) runs this tritonserver command line.
    assert "command" not in container
    restricted = ("--http-restricted-api=", "--grpc-restricted-protocol=")
    flags = tritonserver_args(inside, "/models")
    assert container["args"] == ["tritonserver"] + [a for a in flags if not a.startswith(restricted)]
    # Admin endpoints are restricted as by serve: the supervisor adds the flags from the Secret's
    # TRITONIZE_ADMIN_TOKEN, so the token is never in the container's command line (/proc/1/cmdline).
    assert any(a.startswith(restricted) for a in flags)
    assert not any("TRITONIZE_ADMIN_TOKEN" in a for a in container["args"])
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert plain == {**runtime_environment(options), "TRITONIZE_DRAIN_NOTICE_S": "5", "HOME": "/tmp"}
    assert [e for e in container["env"] if "valueFrom" in e] == [
        {
            "name": "TRITONIZE_ADMIN_TOKEN",
            "valueFrom": {
                "secretKeyRef": {
                    "name": manifests(out)["Deployment"]["metadata"]["name"] + "-admin-token",
                    "key": "token",
                }
            },
        }
    ]
    assert container["image"] == "registry.example/text:1"


def test_model_store_uses_the_stock_image_and_the_store_as_repository(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, model_store="s3://bucket/repo", env_from_secret="aws")
    container = manifests(out)["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert container["args"][0] == "--model-repository=s3://bucket/repo"
    assert container["envFrom"] == [{"secretRef": {"name": "aws"}}]


def test_probes_ports_shm_resources_and_rollout_follow_the_spec(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, image="i:1", shm_size="2Gi")
    deployment = manifests(out)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]  # tritonserver and the Cortex endpoint, under one supervisor
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002, "cortex": 8080, "health": 8003}
    # The probes ask the image's supervisor (server/container.py), played for real in tests/test_e2e_pod.py.
    for probe, path in (("readinessProbe", "/ready"), ("startupProbe", "/ready"), ("livenessProbe", "/live")):
        assert container[probe]["httpGet"] == {"path": path, "port": "health"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # model loading
    assert pod["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": "/tmp"}]
    assert container["volumeMounts"] == mounts
    # compute: gpu is the largest API's (one pod serves both), cpu and mem add up; memory is also the limit.
    assert container["resources"] == {
        "requests": {"cpu": "1500m", "memory": "2560Mi"},
        "limits": {"memory": "2560Mi", "nvidia.com/gpu": 1},
    }
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert deployment["spec"]["replicas"] == 3  # init_replicas
    drain = 5 + 10  # the supervisor's drain notice + tritonserver --exit-timeout-secs
    assert "lifecycle" not in container and {"name": "TRITONIZE_DRAIN_NOTICE_S", "value": "5"} in container["env"]
    assert "--exit-timeout-secs=10" in container["args"]
    assert pod["terminationGracePeriodSeconds"] > drain


def test_containers_run_as_non_root_on_a_read_only_root_filesystem(spec, tmp_path):
    """Issue 23.19: non-root, read-only root, no privilege escalation, no capabilities; Triton writes only
    /dev/shm and /tmp (volumes of their own). Played in a real pod by tests/test_e2e_pod.py."""
    deploy_k8s(spec, output=str(tmp_path / "built"), image="i:1")
    deploy_k8s(spec, output=str(tmp_path / "stock"), model_store="s3://b/r")
    for folder in ("built", "stock"):
        pod = manifests(str(tmp_path / folder))["Deployment"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000 != 0
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/dev/shm", "/tmp"}
    store = manifests(str(tmp_path / "stock"))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert store["livenessProbe"]["exec"]["command"][:2] == ["python3", "-c"]  # health/liveness.py's source


def test_service_ports_and_scraping(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, image="i:1", namespace="ml")
    docs = manifests(out)
    ports = {p["name"]: p for p in docs["Service"]["spec"]["ports"]}
    assert {n: (p["port"], p["targetPort"]) for n, p in ports.items()} == {
        "http": (8000, "http"),
        "grpc": (8001, "grpc"),
        "metrics": (8002, "metrics"),
        "cortex": (80, "cortex"),  # http://<service>/<api>: one endpoint per API, as Cortex's load balancer
    }
    assert ports["grpc"]["appProtocol"] == "grpc"
    # Scraped once: through the pods' annotations, not the Service's too (every pod counted twice).
    assert "annotations" not in docs["Service"]["metadata"]
    pod_annotations = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["prometheus.io/scrape"] == "true" and pod_annotations["prometheus.io/port"] == "8002"
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    monitor = docs["ServiceMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= docs["Service"]["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_autoscaling_maps_cortex_fields(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, image="i:1")
    docs = manifests(out)
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 12)
    (metric,) = hpa["metrics"]
    assert metric["pods"]["metric"]["name"] == "tritonize_inflight_requests_120s"  # window 2m
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "4"}
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 30
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert hpa["behavior"]["scaleUp"]["policies"] == [{"type": "Percent", "value": 200, "periodSeconds": 15}]
    assert hpa["behavior"]["scaleDown"]["policies"] == [{"type": "Percent", "value": 50, "periodSeconds": 15}]
    (rule,) = load(os.path.join(out, "monitoring"), "prometheus-adapter-values.yaml")[0]["rules"]["custom"]
    assert rule["name"]["as"] == "tritonize_inflight_requests_120s"
    assert "[120s]" in rule["metricsQuery"] and "nv_inference_request_duration_us" in rule["seriesQuery"]


def test_defaults_follow_cortex_and_tolerances_need_kubernetes_1_33(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "predictor.py")
    (tmp_path / "cortex.yaml").write_text(
        "- name: a\n  predictor: {path: predictor.py}\n"
        "  autoscaling: {upscale_tolerance: 0.05, downscale_tolerance: 0.1, max_replica_concurrency: 64}\n"
    )
    result = deploy_k8s(str(tmp_path / "cortex.yaml"), output=str(tmp_path / "d"), image="i:1")
    hpa = manifests(str(tmp_path / "d"))["HorizontalPodAutoscaler"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 100)
    behavior = hpa["spec"]["behavior"]
    assert (behavior["scaleUp"]["tolerance"], behavior["scaleDown"]["tolerance"]) == ("50m", "100m")
    assert (behavior["scaleUp"]["stabilizationWindowSeconds"], behavior["scaleDown"]["stabilizationWindowSeconds"]) == (
        60,
        300,
    )
    kubernetes_validate.validate(hpa, "1.33", strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, "1.32", strict=True)
    assert any("max_replica_concurrency: not enforced" in w for w in result.warnings)
    assert any("tolerance" in w and "1.33" in w for w in result.warnings)


def test_keda_and_service_monitor_validate_against_their_crd_schemas(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, image="i:1", namespace="ml", autoscaler="keda", prometheus_url="http://prom:9090")
    docs = manifests(out)
    assert "HorizontalPodAutoscaler" not in docs
    scaled = docs["ScaledObject"]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (2, 12)
    (trigger,) = scaled["triggers"]
    assert trigger["metadata"]["threshold"] == "4" and trigger["metadata"]["serverAddress"] == "http://prom:9090"
    name = docs["Service"]["metadata"]["name"]
    assert (
        trigger["metadata"]["query"]
        == f'sum(rate(nv_inference_request_duration_us{{service="{name}",namespace="ml"}}[120s])) / 1e6'
    )

    assert (
        scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
        == 600
    )
    broken = json.loads(json.dumps(docs["ScaledObject"]))
    broken["spec"]["minReplicaCount"] = "two"
    results = crd_validate([docs["ScaledObject"], docs["ServiceMonitor"], broken])
    assert [r["ok"] for r in results] == [True, True, False], results
    assert "minReplicaCount" in results[2]["error"]


def crd_validate(documents):
    """Validate with the CRD schemas compiled by kubernetes-models-ts (tests/data/crd_validators)."""
    assert os.path.isdir(os.path.join(CRD_VALIDATORS, "node_modules", "@kubernetes-models", "keda")), (
        "run `npm ci` in tests/data/crd_validators (.ci/run does)"
    )
    done = subprocess.run(
        ["node", os.path.join(CRD_VALIDATORS, "validate.mjs")],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=CRD_VALIDATORS,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_kserve_inference_service(spec, tmp_path):
    out = str(tmp_path / "deploy")
    result = deploy_kserve(spec, output=out, model_store="s3://bucket/repo", namespace="ml")
    (isvc,) = load(out, "inferenceservice.yaml")
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 12)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 4)
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "triton"} and model["storageUri"] == "s3://bucket/repo"
    # serve's flags, minus what KServe's runtime sets (repository, HTTP/gRPC ports and addresses)
    full = tritonserver_args(
        dataclasses.replace(
            ServerOptions(str(tmp_path)),
            host="0.0.0.0",
            http_port=8000,
            grpc_port=8001,
            metrics_port=8002,
            admin_token="$(TRITONIZE_ADMIN_TOKEN)",
        ),
        "s3://bucket/repo",
    )
    assert model["args"] == [
        a
        for a in full
        if a.split("=")[0]
        not in ("--model-repository", "--http-port", "--grpc-port", "--http-address", "--grpc-address")
    ]
    assert "--http-header-forward-pattern=^x-" in model["args"]
    annotations = isvc["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/window"] == "120s"
    assert annotations["autoscaling.knative.dev/initial-scale"] == "3"
    assert annotations["autoscaling.knative.dev/max-scale-up-rate"] == "3"
    assert annotations["autoscaling.knative.dev/max-scale-down-rate"] == "2"
    assert annotations["autoscaling.knative.dev/scale-down-delay"] == "600s"
    assert predictor["volumes"][0]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert any("upscale_stabilization_period" in w for w in result.warnings)
    # No InferenceService schema is installable here (see README); its container part is a core/v1 Container:
    container = {k: v for k, v in model.items() if k not in ("modelFormat", "runtime", "storageUri")}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x"},
        "spec": {
            "containers": [{"name": "kserve-container", "image": "x", **container}],
            "volumes": predictor["volumes"],
        },
    }
    for version in _versions():
        kubernetes_validate.validate(pod, version, strict=True)


def test_cli_prints_what_to_apply_and_refuses_bad_input(spec, tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "d")
    result = runner.invoke(cli, ["deploy", "k8s", spec, "--image", "i:1", "-o", out, "--namespace", "ml"])
    assert result.exit_code == 0, result.output
    assert f"kubectl apply -f {out}/" in result.output
    assert "port-forward service/" in result.output and "8000" in result.output
    result = runner.invoke(cli, ["deploy", "k8s", spec, "-o", out])
    assert result.exit_code == 2 and "--image" in result.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "deployment.yaml").write_text("kind: Mine\n")
    result = runner.invoke(cli, ["deploy", "k8s", spec, "--image", "i:1", "-o", str(tmp_path / "mine")])
    assert result.exit_code == 1 and "not written by tritonize" in result.output
    result = runner.invoke(cli, ["deploy", "kserve", spec, "-o", out])
    assert result.exit_code == 2 and "--model-store" in result.output


@pytest.mark.parametrize(
    "text, words",
    [
        ("autoscaling: {min_replicas: 5, max_replicas: 2}", "max_replicas 2 is below min_replicas 5"),
        ("autoscaling: {windoww: 1m}", "autoscaling.windoww: unknown key"),
        ("autoscaling: {window: soon}", "autoscaling.window: expected a duration"),
        ("update_strategy: {max_surge: 0, max_unavailable: 0}", "cannot both be 0"),
        ("update_strategy: {max_surge: lots}", "update_strategy.max_surge: expected"),
        ("compute: {mem: 2 gigs}", "compute.mem: expected a Kubernetes quantity"),
    ],
)
def test_bad_autoscaling_settings_are_spec_errors(tmp_path, text, words):
    from tritonize.adapter.spec import load_spec_file

    (tmp_path / "cortex.yaml").write_text(f"- name: a\n  predictor: {{path: predictor.py}}\n  {text}\n")
    with pytest.raises(SpecError, match=words.replace("[", r"\[").replace("(", r"\(")):
        load_spec_file(str(tmp_path / "cortex.yaml"))


def test_ports_are_the_container_ports_serve_uses():
    from tritonize.server.docker_launcher import CONTAINER_PORTS

    assert PORTS == CONTAINER_PORTS


def test_committed_example_manifests_are_current(tmp_path):
    """examples/echo/deploy*/ is what `tritonize deploy` writes today for examples/echo/cortex.yaml."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = os.path.join(root, "examples", "echo", "cortex.yaml")
    deploy_k8s(spec, output=str(tmp_path / "echo"), image="registry.example/echo:1")
    deploy_kserve(spec, output=str(tmp_path / "echo-kserve"), model_store="s3://my-bucket/echo-repository")
    for folder, committed_name in (("echo", "deploy"), ("echo-kserve", "deploy-kserve")):
        committed = os.path.join(root, "examples", "echo", committed_name)
        for dirpath, _, files in os.walk(tmp_path / folder):
            for name in files:
                fresh = os.path.join(dirpath, name)
                relative = os.path.relpath(fresh, tmp_path / folder)
                with open(fresh) as a, open(os.path.join(committed, relative)) as b:
                    assert a.read() == b.read(), f"examples/echo/{committed_name}/{relative} is stale: regenerate it"


# KServe's own field tables (from its generated SDK models; tests/data/kserve/extract_models.py).
KSERVE_MODELS = json.load(
    open(os.path.join(os.path.dirname(__file__), "data", "kserve", "kserve_v1beta1_models.json"))
)["models"]
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


def kserve_schema_errors(value, type_name, path="InferenceService"):
    """Field names and value types checked against KServe's models; core Kubernetes types
    (V1Container, V1ObjectMeta, ...) are checked by kubernetes-validate elsewhere."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [e for i, item in enumerate(value) for e in kserve_schema_errors(item, type_name[5:-1], f"{path}[{i}]")]
    if type_name.startswith("dict("):
        inner = type_name[5:-1].split(", ", 1)[1]
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        return [e for k, v in value.items() for e in kserve_schema_errors(v, inner, f"{path}.{k}")]
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (type_name == "int" and isinstance(value, bool))
        return [] if ok else [f"{path}: expected {type_name}, got {value!r}"]
    fields = KSERVE_MODELS.get(type_name)
    if fields is None:
        return []  # a core Kubernetes type
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping"]
    errors = []
    for key, item in value.items():
        if key not in fields:
            errors.append(f"{path}.{key}: not a field of {type_name}")
        else:
            errors += kserve_schema_errors(item, fields[key], f"{path}.{key}")
    return errors


def test_inference_service_matches_kserve_models(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_kserve(spec, output=out, model_store="s3://bucket/repo", image="registry.example/text:1")
    (isvc,) = load(out, "inferenceservice.yaml")
    assert kserve_schema_errors(isvc, "V1beta1InferenceService") == []
    broken = json.loads(json.dumps(isvc))
    broken["spec"]["predictor"]["model"]["storageURI"] = broken["spec"]["predictor"]["model"].pop("storageUri")
    broken["spec"]["predictor"]["minReplicas"] = "2"
    assert kserve_schema_errors(broken, "V1beta1InferenceService") == [
        "InferenceService.spec.predictor.minReplicas: expected int, got '2'",
        "InferenceService.spec.predictor.model.storageURI: not a field of V1beta1ModelSpec",
    ]


def test_the_cortex_endpoint_runs_under_the_built_images_supervisor(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, image="registry.example/text:1")
    (triton,) = manifests(out)["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "cortex", "containerPort": 8080, "protocol": "TCP"} in triton["ports"]
    assert "TRITONIZE_CORTEX_PORT" not in {e["name"] for e in triton["env"]}  # the image's ENV (docker build)
    # A stock image (--model-store) has no supervisor and no Cortex endpoint: no Service port for it.
    deploy_k8s(spec, output=str(tmp_path / "store"), model_store="s3://b/r")
    docs = manifests(str(tmp_path / "store"))
    (stock,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert stock["command"] == ["env", "-u", "TRITONIZE_ADMIN_TOKEN", "tritonserver"] and "cortex" not in {
        p["name"] for p in stock["ports"]
    }
    assert "cortex" not in {p["name"] for p in docs["Service"]["spec"]["ports"]}


def test_deploying_again_removes_what_the_earlier_run_wrote_and_this_one_does_not(spec, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(spec, output=out, image="i:1")  # HPA
    assert "HorizontalPodAutoscaler" in manifests(out)
    (tmp_path / "deploy" / "mine.yaml").write_text("kind: ConfigMap\n")  # the user's own: kept
    result = deploy_k8s(spec, output=out, image="i:1", autoscaler="keda")
    kinds = list(manifests(out))
    assert "ScaledObject" in kinds and "HorizontalPodAutoscaler" not in kinds, kinds
    assert (tmp_path / "deploy" / "mine.yaml").exists()
    assert any("removed" in w and "an earlier `tritonize deploy` wrote it" in w for w in result.warnings)


def test_kserve_gets_the_same_container_security_and_keeps_the_supervisor_off_its_port(spec, tmp_path):
    deploy_kserve(spec, output=str(tmp_path / "plain"), model_store="s3://bucket/repo")
    deploy_kserve(spec, output=str(tmp_path / "built"), model_store="s3://bucket/repo", image="registry.example/t:1")
    for folder in ("plain", "built"):
        (service,) = manifests(str(tmp_path / folder)).values()
        model = service["spec"]["predictor"]["model"]
        assert model["securityContext"]["readOnlyRootFilesystem"] is True
        assert model["securityContext"]["runAsNonRoot"] is True
        assert {m["mountPath"] for m in model["volumeMounts"]} == {"/dev/shm", "/tmp"}
    built = manifests(str(tmp_path / "built"))["InferenceService"]["spec"]["predictor"]["model"]
    # KServe's runtime passes `tritonserver --http-port=8080 ...` as args: the image's supervisor runs it,
    # and its Cortex endpoint (8080 by default) stays off.
    assert {"name": "TRITONIZE_CORTEX_PORT", "value": "off"} in built["env"]
