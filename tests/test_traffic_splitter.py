# ruff: noqa: E501  (specs and messages are compared verbatim)
"""kind: TrafficSplitter in a spec: Cortex's validation and messages, and what the built repository records."""

import json
import os
import textwrap

import pytest
import yaml
from conftest import run_tritonize

from tritonize.adapter.build import build
from tritonize.adapter.spec import load_spec_file
from tritonize.cortex_endpoint.routes import load_routes
from tritonize.cortex_endpoint.traffic_splitter import STATS_PATH, SplitRoute
from tritonize.deploy.target import deploy_k8s
from tritonize.errors import SpecError

PREDICTOR = "class PythonPredictor:\n    def __init__(self, config):\n        pass\n    def predict(self, payload):\n        return payload\n"
APIS = textwrap.dedent(
    """
    - name: a
      predictor: {type: python, path: predictor.py}
    - name: b
      predictor: {type: python, path: predictor.py}
    - name: c
      predictor: {type: python, path: predictor.py}
    """
)


def spec(tmp_path, splitter):
    (tmp_path / "predictor.py").write_text(PREDICTOR)
    (tmp_path / "cortex.yaml").write_text(APIS + textwrap.dedent(splitter))
    return str(tmp_path / "cortex.yaml")


def test_a_splitter_is_parsed_with_its_shadow_and_endpoint(tmp_path):
    apis = load_spec_file(
        spec(
            tmp_path,
            """
            - name: split
              kind: TrafficSplitter
              networking: {endpoint: /v1/split/}
              apis:
                - {name: a, weight: 70}
                - {name: b, weight: 30}
                - {name: c, weight: 0, shadow: true}
            """,
        )
    )
    assert [a.name for a in apis] == ["a", "b", "c"]
    (splitter,) = apis.traffic_splitters
    assert (splitter.name, splitter.endpoint, splitter.shadow) == ("split", "/v1/split", "c")
    assert [(t.name, t.weight) for t in splitter.targets] == [("a", 70), ("b", 30)]


@pytest.mark.parametrize(
    "apis, message",
    [
        (
            "[{name: a, weight: 60}, {name: b, weight: 30}]",
            "split).apis: expected weights of all non-shadow apis to sum to 100 but found 90",
        ),
        (
            "[{name: a, weight: 70}, {name: b, weight: 30}, {name: c, weight: 10, shadow: true}, {name: a, weight: 0, shadow: true}]",
            "apis: api not unique: a",
        ),
        (
            "[{name: a, weight: 100}, {name: b, weight: 0, shadow: true}, {name: c, weight: 0, shadow: true}]",
            "apis: multiple shadow apis detected; only one api is allowed to be marked as a shadow",
        ),
        (
            "[{name: a, weight: 70}, {name: nope, weight: 30}]",
            "split: api nope was either not found or is not a RealtimeAPI",
        ),
        (
            "[{name: x, weight: 70}, {name: y, weight: 30}]",
            "split: apis x, y were either not found or are not RealtimeAPIs",
        ),
        (
            "[{name: a, weight: 101}, {name: b, weight: -1}]",
            "apis[0].weight: required: an integer from 0 to 100, got 101",
        ),
        ("[{name: a, weight: true}]", "apis[0].weight: required: an integer from 0 to 100"),
        ("[{name: a}]", "apis[0].weight: required"),
        ("[{name: a, weight: 100, shadow: maybe}]", "apis[0].shadow: expected true or false"),
        ("[{name: a, weight: 100, mirror: true}]", "apis[0].mirror: unknown key"),
        ("[]", "split).apis: required"),
    ],
)
def test_validation_errors_as_cortex_gave_them(tmp_path, apis, message):
    with pytest.raises(SpecError) as error:
        load_spec_file(spec(tmp_path, f"- name: split\n  kind: TrafficSplitter\n  apis: {apis}\n"))
    assert message in str(error.value)


@pytest.mark.parametrize(
    "splitter, message",
    [
        ("- name: a\n  kind: TrafficSplitter\n  apis: [{name: b, weight: 100}]\n", "two APIs are named 'a'"),
        (
            "- name: s\n  kind: TrafficSplitter\n  networking: {endpoint: b}\n  apis: [{name: a, weight: 100}]\n",
            "APIs 'b' and 's' both answer on /b",
        ),
        (
            "- name: s\n  kind: TrafficSplitter\n  predictor: {path: x.py}\n  apis: [{name: a, weight: 100}]\n",
            "s).predictor: unknown key",
        ),
    ],
)
def test_names_and_paths_are_shared_with_the_apis(tmp_path, splitter, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_spec_file(spec(tmp_path, splitter))


def test_a_typed_tensor_api_cannot_be_split(tmp_path):
    (tmp_path / "predictor.py").write_text(PREDICTOR)
    (tmp_path / "cortex.yaml").write_text(
        "- name: t\n  predictor:\n    path: predictor.py\n    tensors:\n      inputs: [{name: x, dtype: FP32, shape: [2]}]\n"
        "      outputs: [{name: y, dtype: FP32, shape: [2]}]\n"
        "- name: s\n  kind: TrafficSplitter\n  apis: [{name: t, weight: 100}]\n"
    )
    with pytest.raises(SpecError, match="api t takes typed tensors"):
        load_spec_file(str(tmp_path / "cortex.yaml"))


def test_the_cli_refuses_a_bad_splitter_with_exit_2_and_no_traceback(tmp_path):
    path = spec(tmp_path, "- name: split\n  kind: TrafficSplitter\n  apis: [{name: a, weight: 50}]\n")
    result = run_tritonize("build", path, "-o", str(tmp_path / "repo"), check=False)
    assert result.returncode == 2
    assert "expected weights of all non-shadow apis to sum to 100 but found 50" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "repo").exists()


def test_the_repository_records_the_splitter_and_the_endpoint_routes_it(tmp_path):
    path = spec(
        tmp_path,
        """
        - name: split
          kind: TrafficSplitter
          networking: {endpoint: ab}
          apis: [{name: a, weight: 70}, {name: b, weight: 30}, {name: c, weight: 0, shadow: true}]
        """,
    )
    build(path, str(tmp_path / "repo"))
    marker = json.loads((tmp_path / "repo" / ".tritonize.json").read_text())
    assert marker["traffic_splitters"] == [
        {
            "name": "split",
            "endpoint": "/ab",
            "apis": [
                {"name": "a", "weight": 70, "shadow": False},
                {"name": "b", "weight": 30, "shadow": False},
                {"name": "c", "weight": 0, "shadow": True},
            ],
        }
    ]
    routes = load_routes(str(tmp_path / "repo"))
    assert routes["/split"] is routes["/ab"] and isinstance(routes["/split"], SplitRoute)
    assert [(r.api, w) for r, w in routes["/split"].targets] == [("a", 70), ("b", 30)]
    assert routes["/split"].shadow.api == "c"
    assert STATS_PATH in routes


def test_the_kubernetes_manifests_carry_the_splitter_to_the_pods_cortex_endpoint(tmp_path):
    """The pod's Cortex endpoint (run by the image's supervisor, docs/production.md) serves the image's
    repository, whose marker holds the splitter; the Service's cortex port reaches it, so POST /<splitter>
    on the Service routes as `serve` does (tests/test_e2e_pod.py plays such a pod)."""
    path = spec(
        tmp_path, "- name: split\n  kind: TrafficSplitter\n  apis: [{name: a, weight: 70}, {name: b, weight: 30}]\n"
    )
    deploy_k8s(path, output=str(tmp_path / "deploy"), image="registry.example/models:1")
    docs = {}
    for folder, _, names in os.walk(tmp_path / "deploy"):
        for name in names:
            for doc in yaml.safe_load_all(open(f"{folder}/{name}")):
                if isinstance(doc, dict):
                    docs[doc.get("kind")] = doc
    containers = {c["name"]: c for c in docs["Deployment"]["spec"]["template"]["spec"]["containers"]}
    (container,) = containers.values()  # the supervisor runs tritonserver and the Cortex endpoint
    assert "--model-repository=/models" in container["args"]  # where the image holds the built repository
    assert "cortex" in [p["name"] for p in container["ports"]]
    assert "cortex" in [p["name"] for p in docs["Service"]["spec"]["ports"]]


def _split_route(shadow=True):
    from tritonize.cortex_endpoint.routes import Route
    from tritonize.cortex_endpoint.traffic_splitter import SHADOW_COUNTERS, Counters

    targets = [(Route("a"), 70), (Route("b"), 30)]
    return SplitRoute("s", targets, Route("shadow") if shadow else None, Counters(2 + len(SHADOW_COUNTERS)), 0)


class _Request:
    method = b"POST"
    body = b"{}"
    headers = []
    query = b""


def test_a_shadow_that_raises_or_hangs_never_reaches_the_client():
    import asyncio

    from tritonize.cortex_endpoint import traffic_splitter

    async def scenario():
        route = _split_route()
        loop = asyncio.get_running_loop()

        class Raising:
            def _predict(self, target, conn, request):
                raise RuntimeError("boom")

        class Hanging:
            def _predict(self, target, conn, request):
                return loop.create_future()  # the shadow never answers

        assert route.resolve(Raising(), None, _Request()).api in ("a", "b")
        for _ in range(traffic_splitter.MAX_SHADOW_IN_FLIGHT + 5):
            assert route.resolve(Hanging(), None, _Request()).api in ("a", "b")
        return route.stats()["shadow"], route.stats()["targets"]

    shadow, targets = asyncio.run(scenario())
    sent = traffic_splitter.MAX_SHADOW_IN_FLIGHT + 6
    assert shadow == {"name": "shadow", "sent": sent, "answered": 0, "failed": 1, "dropped": 5}
    assert sum(t["requests"] for t in targets) == sent


def test_a_get_on_a_splitter_is_answered_like_an_api_and_not_counted():
    route = _split_route(shadow=False)

    class Get(_Request):
        method = b"GET"

    assert route.resolve(None, None, Get()).api == "a"
    assert [t["requests"] for t in route.stats()["targets"]] == [0, 0]


def test_build_lists_the_splitter(tmp_path):
    path = spec(
        tmp_path,
        "- name: split\n  kind: TrafficSplitter\n  apis: [{name: a, weight: 70}, {name: b, weight: 30}, {name: c, weight: 0, shadow: true}]\n",
    )
    result = run_tritonize("build", path, "-o", str(tmp_path / "repo"))
    assert "  split: TrafficSplitter: a 70 %, b 30 %, shadow c" in result.stdout.splitlines()
