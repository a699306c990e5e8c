"""A predictor failing the same way logs its traceback once per window; each repeat gets one line with its id."""

import logging

from pipeline_helpers import answer_one

from tritonize.adapter.runtime import errors
from tritonize.adapter.runtime.failure_log import FailureLog
from tritonize.adapter.runtime.params import ParameterRules
from tritonize.adapter.runtime.predictor import LoadedPredictor


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def fail(value):
    if value == "other":
        raise KeyError(value)
    raise ValueError(f"bad value {value}")  # a message that differs per request


def failure(value):
    try:
        fail(value)
    except Exception as exc:
        return exc


def test_identical_failures_log_one_traceback_per_window(caplog, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(errors, "failures", FailureLog(window_s=60, clock=clock))
    with caplog.at_level(logging.ERROR, logger="tritonize"):
        for i in range(5):
            errors.log_failure("predict() failed", failure(i), f"id{i}")
        errors.log_failure("predict() failed", failure("other"), "idk")  # another exception type: its own traceback
        messages = [r.getMessage() for r in caplog.records]
        assert [m for m in messages if "Traceback" in m] == [messages[0], messages[5]]
        assert "ValueError: bad value 0" in messages[0] and "KeyError: 'other'" in messages[5]
        # The repeats: one line each, their own id, pointing at the entry with the traceback.
        assert (
            messages[3]
            == "predict() failed [error id id3]: ValueError: bad value 3 (traceback as logged for error id id0)"
        )
        clock.now = 61
        errors.log_failure("predict() failed", failure(9), "id9")
    last = caplog.records[-1].getMessage()
    assert last.startswith("predict() failed [error id id9] (4 more like this in the last 60 s, without traceback):")
    assert "ValueError: bad value 9" in last and 'in fail\n    raise ValueError(f"bad value {value}")' in last


def test_each_failing_request_still_gets_its_own_error_reply(caplog, monkeypatch):
    class Broken:
        def predict(self, payload):
            raise RuntimeError(f"cannot handle {payload['n']}")

    monkeypatch.setattr(errors, "failures", FailureLog())
    predictor = LoadedPredictor(Broken())
    with caplog.at_level(logging.ERROR, logger="tritonize"):
        replies = [answer_one(predictor, b'{"n": %d}' % i, "{}", ParameterRules("^x-")) for i in range(3)]
    assert [r.status for r in replies] == [500] * 3
    assert all(r.message.startswith("internal server error (error id ") for r in replies)
    tracebacks = [r for r in caplog.records if "Traceback" in r.getMessage()]
    assert len(tracebacks) == 1 and "cannot handle 0" in tracebacks[0].getMessage()
