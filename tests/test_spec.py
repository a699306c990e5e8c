import pytest

from tritonize.adapter.spec import api_from_predictor_file, load_spec_file
from tritonize.errors import SpecError


def write(tmp_path, text, name="cortex.yaml"):
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "predictor.py").write_text(
        "class PythonPredictor:\n    def predict(self, payload):\n        return payload\n"
    )
    return str(path)


def test_two_apis_with_all_supported_fields(tmp_path):
    (tmp_path / "lib").mkdir()
    spec = write(
        tmp_path,
        """
- name: a
  kind: RealtimeAPI
  predictor: {type: python, path: predictor.py, config: {k: 1}, python_path: lib, env: {A: 1, B: x}}
- name: b
  predictor: {path: ./predictor.py}
""",
    )
    a, b = load_spec_file(spec)
    assert (a.name, a.predictor_path, a.config, a.python_path, a.env) == (
        "a",
        "predictor.py",
        {"k": 1},
        ["lib"],
        {"A": "1", "B": "x"},
    )
    assert a.project_dir == str(tmp_path.resolve())
    assert (b.name, b.predictor_path, b.config, a.warnings, b.warnings) == ("b", "predictor.py", {}, [], [])


def test_known_but_unused_fields_are_warned_once(tmp_path):
    spec = write(
        tmp_path,
        """
- name: a
  predictor: {type: python, path: predictor.py, server_side_batching: {max_batch_size: 8}, threads_per_process: 2}
  compute: {cpu: 1, mem: 1G}
  autoscaling: {min_replicas: 1}
  networking: {endpoint: /a}
""",
    )
    (api,) = load_spec_file(spec)
    assert api.endpoint == "/a"  # served by the Cortex endpoint (cortex_endpoint/), not ignored
    # threads_per_process is warned at build, once it is known the API does not stream (test_streaming.py).
    assert api.warnings == []


@pytest.mark.parametrize(
    "text, words",
    [
        ("- name: a\n  predictor: {path: predictor.py}\n  bogus: 1\n", "[0] (a).bogus: unknown key"),
        ("- name: a\n  predictor: {path: predictor.py, wat: 1}\n", "[0] (a).predictor.wat: unknown key"),
        (
            "- name: a\n  predictor: {type: tensorflow, path: x}\n",
            "predictor.type: 'tensorflow' predictors are not supported",
        ),
        (
            "- name: a\n  kind: BatchAPI\n"
            "  predictor: {path: predictor.py, server_side_batching: {max_batch_size: 2}}\n",
            "[0] (a).predictor.server_side_batching: a BatchAPI's predict() already gets a whole batch",
        ),
        (
            "- name: a\n  kind: BatchAPI\n  predictor: {type: tensorflow, path: x}\n",
            "[0] (a).predictor.type: 'tensorflow' predictors are not supported (only 'python'): write a",
        ),
        (
            "- name: a\n  kind: BatchAPI\n  predictor: {path: predictor.py}\n  autoscaling: {max_replicas: 3}\n",
            "[0] (a).autoscaling: a BatchAPI has no autoscaling: each job runs `workers` workers (Cortex's rule)",
        ),
        (
            "- name: a\n  kind: Foo\n  predictor: {path: predictor.py}\n",
            "unknown kind 'Foo' (expected RealtimeAPI or BatchAPI)",
        ),
        ("- name: 'bad name!'\n  predictor: {path: predictor.py}\n", "is not a valid API name"),
        ("- name: a\n  predictor: {type: python}\n", "predictor.path: required"),
        ("- name: a\n", "[0] (a).predictor: required"),
        ("- name: a\n  predictor: {path: ../outside.py}\n", "points outside the project directory"),
        ("- name: a\n  predictor: {path: /abs/p.py}\n", "must be relative"),
        ('- name: a\n  predictor: {path: "pred\\0.py"}\n', "contains a NUL byte"),
        ("- name: a\n  predictor: {path: predictor.py, env: {A: [1]}}\n", "predictor.env.A: expected a string"),
        (
            "- name: a\n  predictor: {path: predictor.py}\n- name: a\n  predictor: {path: predictor.py}\n",
            "two APIs are named 'a'",
        ),
        ("foo: [\n", "not valid YAML"),
        ("42\n", "expected a list of APIs"),
    ],
)
def test_bad_specs_name_the_offending_key(tmp_path, text, words):
    with pytest.raises(SpecError) as err:
        load_spec_file(write(tmp_path, text))
    assert words in str(err.value)


def test_predictor_file_api_names(tmp_path):
    project = tmp_path / "my_project"
    project.mkdir()
    (project / "predictor.py").write_text("")
    (project / "sentiment_v2.py").write_text("")
    assert api_from_predictor_file(str(project / "predictor.py")).name == "my_project"
    assert api_from_predictor_file(str(project / "sentiment_v2.py")).name == "sentiment_v2"
    assert api_from_predictor_file(str(project / "predictor.py"), name="x", config={"a": 1}).config == {"a": 1}
    with pytest.raises(SpecError):
        api_from_predictor_file(str(project / "predictor.py"), name="no/slashes")


@pytest.mark.parametrize(
    "networking,expected",
    [("{endpoint: v1/classify/}", "/v1/classify"), ("{endpoint: /a.b_c-d}", "/a.b_c-d"), ("{}", None)],
)
def test_networking_endpoint_is_a_url_path(tmp_path, networking, expected):
    spec = write(
        tmp_path, f"- name: a\n  predictor: {{type: python, path: predictor.py}}\n  networking: {networking}\n"
    )
    assert load_spec_file(spec)[0].endpoint == expected


@pytest.mark.parametrize("endpoint", ["'/a b'", "/_tritonize/ready", "'../x'", "'a//b'", "1"])
def test_bad_networking_endpoint_is_refused(tmp_path, endpoint):
    text = f"- name: a\n  predictor: {{type: python, path: predictor.py}}\n  networking: {{endpoint: {endpoint}}}\n"
    with pytest.raises(SpecError, match="networking.endpoint"):
        load_spec_file(write(tmp_path, text))


def test_two_apis_on_one_endpoint_are_refused(tmp_path):
    spec = write(
        tmp_path,
        "- name: a\n  predictor: {type: python, path: predictor.py}\n  networking: {endpoint: b}\n"
        "- name: b\n  predictor: {type: python, path: predictor.py}\n",
    )
    with pytest.raises(SpecError, match="both answer on /b"):
        load_spec_file(spec)
