"""The request timeout: spec parsing, serve's default, and the runtime's check (no Triton)."""

import time

import pytest

from tritonize.adapter.repository import api_settings
from tritonize.adapter.runtime.constants import REQUEST_TIMEOUT_ENV, REQUEST_TIMEOUT_EXIT_CODE
from tritonize.adapter.runtime.repository_model import ApiSettings, PredictorSettings
from tritonize.adapter.runtime.request_timeout import RequestTimeout
from tritonize.adapter.spec import load_spec_file
from tritonize.errors import SpecError
from tritonize.server.options import ServerOptions, runtime_environment

PREDICTOR = "class PythonPredictor:\n    def predict(self, payload):\n        return payload\n"


def spec_api(tmp_path, extra):
    (tmp_path / "predictor.py").write_text(PREDICTOR)
    (tmp_path / "cortex.yaml").write_text("- name: a\n  predictor: {path: predictor.py}\n" + extra)
    (api,) = load_spec_file(str(tmp_path / "cortex.yaml"))
    return api


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("", None),
        ("  tritonize: {request_timeout: 30s}\n", 30.0),
        ("  tritonize: {request_timeout: 2m}\n", 120.0),
        ("  tritonize: {request_timeout: 0}\n", 0.0),
        ("  tritonize: {request_timeout: 1.5}\n", 1.5),
    ],
)
def test_the_spec_sets_the_timeout_in_the_settings(tmp_path, extra, expected):
    api = spec_api(tmp_path, extra)
    assert api_settings(api).request_timeout_s == expected


@pytest.mark.parametrize("value", ["soon", "-3s", "true"])
def test_a_bad_timeout_names_the_key(tmp_path, value):
    with pytest.raises(SpecError, match=r"tritonize\.request_timeout: "):
        spec_api(tmp_path, f"  tritonize: {{request_timeout: {value}}}\n")


def test_a_misspelt_key_is_refused(tmp_path):
    with pytest.raises(SpecError, match="request_timout: unknown key .*request_timeout"):
        spec_api(tmp_path, "  tritonize: {request_timout: 3s}\n")


def test_the_spec_wins_over_serves_default_and_zero_turns_it_off():
    env = runtime_environment(ServerOptions("repo", request_timeout_s=30.0))
    assert env[REQUEST_TIMEOUT_ENV] == "30"
    assert REQUEST_TIMEOUT_ENV not in runtime_environment(ServerOptions("repo"))

    def timeout_s(value, environ):
        return ApiSettings("a", PredictorSettings("p.py"), request_timeout_s=value).timeout_s(environ)

    assert timeout_s(None, env) == 30.0
    assert timeout_s(2.0, env) == 2.0
    assert timeout_s(0.0, env) is None
    assert timeout_s(None, {}) is None
    assert timeout_s(None, {REQUEST_TIMEOUT_ENV: "junk"}) is None


class Model:
    busy_since = None


def test_the_check_ends_the_process_only_past_the_timeout(caplog):
    model, ended, now = Model(), [], [100.0]
    timeout = RequestTimeout(model, "api", "api_0_0", 2.0, end=ended.append, clock=lambda: now[0])
    assert not timeout.check()  # idle
    model.busy_since = 99.0
    assert not timeout.check()  # 1 s into a request
    now[0] = 101.5
    with caplog.at_level("ERROR", logger="tritonize"):
        assert timeout.check()
    assert ended == [REQUEST_TIMEOUT_EXIT_CODE]
    assert "API 'api', instance api_0_0: a request has run 2.5 s, over the request timeout of 2 s" in caplog.text


def test_the_thread_checks_often_enough_for_short_timeouts():
    model, ended = Model(), []
    timeout = RequestTimeout(model, "api", "api_0_0", 0.2, end=ended.append).start()
    try:
        model.busy_since = time.monotonic()
        deadline = time.monotonic() + 5
        while not ended and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ended == [REQUEST_TIMEOUT_EXIT_CODE]
    finally:
        timeout.stop()


def test_serve_refuses_a_bad_request_timeout(tmp_path):
    from click.testing import CliRunner

    from tritonize.cli.main import cli

    result = CliRunner().invoke(cli, ["serve", str(tmp_path), "--request-timeout", "soon"])
    assert result.exit_code == 2 and "--request-timeout: expected a duration like 30s or 2m" in result.output
