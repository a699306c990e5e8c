"""End to end on real Triton: the predictor's process is what a Cortex predictor expects
(docs/predictor-environment.md): UTF-8 text I/O, PYTHONPATH from predictor.env on sys.path, the API's
environment before the predictor's import, and tritonize's log lines once whatever the predictor does
with logging."""

import os
import shutil
import time

import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("environment")
    shutil.copytree(os.path.join(FIXTURES, "environment"), work / "project")
    (work / "project" / "données.txt").write_text("from a file with a non-ASCII name\n", encoding="utf-8")
    repo = work / "model_repository"
    run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(repo))
    # Whatever the server's environment says: the stub ignores it (isolated Python, no setlocale()).
    env = {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "1"}
    serve = ServeProcess(str(repo), env=env)
    assert serve.wait_ready(), serve.output()
    yield serve
    assert serve.stop() == 0, serve.output()


@pytest.fixture(scope="module")
def answer(server):
    with Client(server.http_url) as client:
        return client.predict("environment", {})


def test_plain_open_of_a_utf8_file_and_utf8_streams(answer):
    assert answer["labels"] == ["café", "naïve", "日本", "✓"]
    assert answer["preferred_encoding"] == "UTF-8" and answer["stdout_encoding"] == "utf-8"


def test_pythonpath_and_the_apis_environment_reach_the_predictor_at_import(answer):
    assert answer["helpers"] == "libs/shared_helpers.py via PYTHONPATH"
    assert answer["greeting_at_import"] == answer["greeting_now"] == "grüße ✓"


def test_file_names_the_filesystem_encoding_stays_ascii(answer):
    """The documented limit: fixed when the stub's interpreter started; bytes and names read from disk work."""
    assert answer["filesystem_encoding"] == "ascii"
    assert answer["listed_name_opened"] == answer["bytes_name_opened"] == "from a file with a non-ASCII name"
    assert answer["literal_name_opened"].startswith("UnicodeEncodeError")


def _wait_for(server, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    return server.output()


def test_non_ascii_print_and_logging_reach_the_server_log(server, answer):
    log = _wait_for(server, "predict: ✓")
    assert "environment probe: labels café naïve 日本 ✓ grüße ✓" in log
    assert "logging from the predictor: café" in log


def test_tritonize_log_lines_appear_once_after_the_predictor_configured_logging(server, answer):
    """The predictor's logging.info() attached a root handler (basicConfig) in __init__; tritonize's
    "predictor ready" comes after it and must not be printed twice (once more by the root handler)."""
    log = _wait_for(server, "environment: predictor ready")
    ready = [line for line in log.splitlines() if "environment: predictor ready" in line]
    assert len(ready) == 1, ready
    assert "INFO:tritonize:" not in log  # basicConfig's format: a line the root handler printed
