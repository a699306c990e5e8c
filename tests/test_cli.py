"""The CLI in-process (click's runner): build errors, `tritonize test` dry runs."""

import json
import os
import sys
import sysconfig

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from tritonize.cli.main import cli

PROJECT = os.path.join(FIXTURES, "project")


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_dry_run_uses_server_decode_and_encode():
    cwd = os.getcwd()
    result = run(
        "test",
        os.path.join(PROJECT, "cortex.yaml"),
        "--api",
        "echo",
        "--data",
        '{"a": 1}',
        "--param",
        "q=1",
        "--header",
        "X-Tenant=acme",
        "--header",
        "Accept=x",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["payload"] == {"a": 1} and out["query_params"] == {"q": "1"} and out["headers"]["x-tenant"] == "acme"
    assert "header 'Accept' would not be forwarded" in result.stderr
    assert os.getcwd() == cwd  # the dry run's chdir is undone


def test_dry_run_errors_exit_non_zero_with_status():
    spec = os.path.join(PROJECT, "cortex.yaml")
    bad = run("test", spec, "--api", "behaviour", "--data", "{oops")
    assert bad.exit_code == 1 and "[400] malformed JSON" in bad.stderr
    failing = run("test", spec, "--api", "behaviour", "--data", "{}", "--param", "op=raise")
    # tritonize test shows the exception text (a served API answers just `internal server error (error id ...)`).
    assert failing.exit_code == 1 and "[500] internal server error (error id " in failing.stderr
    assert "ValueError: the predictor raised on purpose" in failing.stderr
    ambiguous = run("test", spec, "--data", "{}")
    assert ambiguous.exit_code == 2 and "pick one with --api" in ambiguous.stderr


def test_dry_run_shows_init_traceback():
    result = run("test", os.path.join(FIXTURES, "broken", "predictor.py"), "--data", "{}")
    assert result.exit_code == 1
    assert "PythonPredictor.__init__ failed" in result.stderr and "cannot find weights" in result.stderr


def test_build_reports_bad_predictor_and_writes_nothing(tmp_path):
    bad = tmp_path / "predictor.py"
    bad.write_text("class PythonPredictor:\n    def predict(self, payload, body):\n        pass\n")
    result = run("build", str(bad), "-o", str(tmp_path / "repo"))
    assert result.exit_code == 2 and "unsupported argument 'body'" in result.stderr
    assert not (tmp_path / "repo").exists()


def test_build_config_values_are_yaml_scalars(tmp_path):
    pred = tmp_path / "predictor.py"
    pred.write_text("class PythonPredictor:\n    def predict(self, payload):\n        pass\n")
    result = run(
        "build",
        str(pred),
        "-o",
        str(tmp_path / "repo"),
        "--config",
        "n=3",
        "--config",
        "flag=true",
        "--config",
        "name=bert",
        "--name",
        "api1",
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "repo" / "api1" / "1" / "tritonize_api.json").read_text())
    assert settings["predictor"]["config"] == {"n": 3, "flag": True, "name": "bert"}


def test_build_warns_about_ignored_fields(tmp_path):
    import shutil

    shutil.copytree(PROJECT, tmp_path / "p")
    result = run("build", str(tmp_path / "p" / "cortex.yaml"), "-o", str(tmp_path / "repo"))
    assert result.exit_code == 0, result.output
    # compute.cpu picks CPU instances and compute.mem is the memory request of `tritonize deploy`: used.
    assert "compute.mem" not in result.stderr
    assert "compute.cpu" not in result.stderr
    assert "  behaviour: 1 CPU instance" in result.stdout
    assert sorted(os.listdir(tmp_path / "repo")) == [".tritonize.json", "behaviour", "echo", "iris"]


def test_server_environment_puts_this_python_first():
    from tritonize.host.triton_install import find_triton

    env = find_triton().environment({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/x"})
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    libs = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert libs[0] == sysconfig.get_config_var("LIBDIR") and libs[-1] == "/opt/x"
    assert libs[1].endswith("nvidia_pytriton.libs")


def test_dry_run_batching_and_typed_apis_take_the_server_path(tmp_path):
    pytest.importorskip("torch", reason="the typed fixture predictor uses torch")
    batching = os.path.join(FIXTURES, "batching", "cortex.yaml")
    out = run("test", batching, "--api", "batched", "--data", '{"i": 1}', "--param", "k=v")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {"echo": {"i": 1}, "q": {"k": "v"}, "batch_len": 1}
    typed = run("test", batching, "--api", "typed", "--data", '{"x": [1, 2, 3, 4]}')
    assert typed.exit_code == 0, typed.output
    result = json.loads(typed.stdout)
    assert len(result["y"]) == 3 and result["batch_len"] == [1]
    bad = run("test", batching, "--api", "typed", "--data", '{"y": 1}', "--param", "op=x")
    assert bad.exit_code == 1 and "[400]" in bad.stderr and "inputs x" in bad.stderr


def test_dry_run_restores_environment_and_sys_path():
    before_env, before_path = dict(os.environ), list(sys.path)
    result = run("test", os.path.join(PROJECT, "cortex.yaml"), "--api", "behaviour", "--data", "{}")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["env"] == "set-by-spec"
    assert dict(os.environ) == before_env and sys.path == before_path


def test_max_body_size_parsing():
    import click
    import pytest

    from tritonize.cli.values import parse_size as _size

    assert _size("64k", "--max-body-size") == 65536 and _size("10m", "x") == 10 << 20 and _size("123", "x") == 123
    for bad in ("lots", "-1k", "0", "5q"):
        with pytest.raises(click.BadParameter):
            _size(bad, "--max-body-size")


@pytest.mark.parametrize(
    "line, triton",
    [
        ('I1125 17:03:36.998938 21598 server.cc:305] "Waiting for in-flight requests to complete."', True),
        ('W1125 17:03:36.998938 21598 pinned_memory_manager.cc:273] "Unable to allocate pinned system memory"', True),
        ("+------------------+---------+--------+", True),
        ("| iris-classifier  | 1       | READY  |", True),
        ("", True),
        ("Signal (15) received.", True),
        ("using device: cpu", False),
        ("[tritonize 22876] ERROR iris-classifier: predictor failed to load: FileNotFoundError", False),
        ("Device set to use cpu", False),
        ("I love this model", False),
    ],
)
def test_triton_log_lines_are_told_from_predictor_output(line, triton):
    from tritonize.server.triton_log import is_triton_log_line

    assert is_triton_log_line(line) is triton


def test_dry_run_hands_typed_bytes_inputs_over_as_bytes_like_triton(tmp_path):
    """`tritonize test` and the server share one dispatch: a BYTES tensor element is bytes in both."""
    (tmp_path / "predictor.py").write_text(
        "import numpy as np\n\n"
        "class PythonPredictor:\n"
        "    def __init__(self, config):\n        pass\n"
        "    def predict(self, payload):\n"
        "        return {'kind': np.array([[type(v).__name__ for v in payload['text'][0]]], dtype=object)}\n"
    )
    (tmp_path / "cortex.yaml").write_text(
        "- name: typed\n  predictor:\n    type: python\n    path: predictor.py\n    tensors:\n"
        "      inputs: [{name: text, dtype: bytes, shape: [2]}]\n"
        "      outputs: [{name: kind, dtype: bytes, shape: [2]}]\n"
    )
    result = run("test", str(tmp_path / "cortex.yaml"), "--data", '{"text": ["a", "b"]}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"kind": ["bytes", "bytes"]}


def test_dry_run_with_deeply_nested_data_is_a_clear_error(tmp_path):
    pytest.importorskip("torch", reason="the typed fixture predictor uses torch")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    for api in ("echo", "typed"):
        spec = os.path.join(PROJECT if api == "echo" else os.path.join(FIXTURES, "batching"), "cortex.yaml")
        result = run("test", spec, "--api", api, "--data", f"@{deep}")
        assert result.exit_code == 1 and "nested too deeply" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_a_header_pattern_that_forwards_reserved_names(tmp_path):
    result = CliRunner().invoke(cli, ["serve", str(tmp_path), "--header-pattern", ".*"])
    assert result.exit_code != 0 and "also matches content_type, tritonize_query" in result.stderr
    assert "^[a-z0-9-]+$" in result.stderr


def test_dry_run_waits_for_post_predict(tmp_path):
    predictor = tmp_path / "p.py"
    predictor.write_text(
        "import time\n"
        "class PythonPredictor:\n"
        "    def predict(self, payload):\n"
        "        return payload\n"
        "    def post_predict(self, response):\n"
        "        time.sleep(0.3)\n"
        "        print('post_predict saw', response)\n"
    )
    result = run("test", str(predictor), "--data", '{"a": 1}')
    assert result.exit_code == 0 and "post_predict saw {'a': 1}" in result.stdout, result.output


def test_repeated_params_reach_getlist_and_repeated_headers_are_joined(tmp_path):
    predictor = os.path.join(FIXTURES, "contract", "contract_predictor.py")
    args = ["--param", "q=1", "--param", "q=2", "--param", "op=echo", "--header", "X-Tag=a", "--header", "X-Tag=b"]
    result = run("test", predictor, "--config", f"log_dir={tmp_path}", "--data", "{}", *args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["q_all"] == ["1", "2"] and [tuple(p) for p in out["query"]] == [("q", "1"), ("q", "2"), ("op", "echo")]
    assert out["x_tag"] == ["a, b"]  # as over HTTP: one value per name, joined (RFC 9110)


def test_request_helpers_keep_repeated_keys():
    from tritonize.client.bench import Workload
    from tritonize.client.headers import grpc_metadata, http_headers
    from tritonize.client.streams import generate_stream_body

    metadata = {"name": "a", "inputs": [{"name": "payload", "datatype": "BYTES", "shape": [-1, 1]}]}
    workload = Workload(metadata, b"{}", "application/json", {"q": ["1", "2"], "op": "x"})
    assert workload.parameters == {"tritonize_query": "q=1&q=2&op=x", "content_type": "application/json"}
    body = json.loads(generate_stream_body(b"{}", None, {"q": ["1", "2"]}))
    assert body["parameters"] == {"tritonize_query": "q=1&q=2"}
    assert http_headers({"X-Tag": ["a", "b"], "X-One": 1}) == {"X-Tag": "a, b", "X-One": "1"}
    assert grpc_metadata({"X-Tag": ["a", "b"], "k-bin": b"\x00"}).items() == [
        ("x-tag", "a"),
        ("x-tag", "b"),
        ("k-bin", b"\x00"),
    ]
