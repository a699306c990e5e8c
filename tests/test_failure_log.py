"""A predictor failing the same way logs its traceback once per window, counting the repeats."""

import logging

from tritonize.adapter.runtime.failure_log import FailureLog
from tritonize.adapter.runtime.handler import handle_request
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


def test_identical_failures_log_one_traceback_per_window(caplog):
    clock = Clock()
    log = FailureLog(logging.getLogger("tritonize.test"), window_s=60, clock=clock)
    with caplog.at_level(logging.ERROR, logger="tritonize.test"):
        for i in range(5):
            log.failed("predict()", failure(i))
        log.failed("predict()", failure("other"))  # another exception type: its own traceback
        assert [r.getMessage().splitlines()[0] for r in caplog.records] == ["predict() failed:"] * 2
        assert "ValueError: bad value 0" in caplog.records[0].getMessage()
        assert "KeyError: 'other'" in caplog.records[1].getMessage()
        clock.now = 61
        log.failed("predict()", failure(9))
    last = caplog.records[-1].getMessage()
    assert last.startswith("predict() failed (4 more times like this in the last 60 s, not logged):")
    assert "ValueError: bad value 9" in last and 'in fail\n    raise ValueError(f"bad value {value}")' in last


def test_each_failing_request_still_gets_its_own_error_reply(caplog):
    class Broken:
        def predict(self, payload):
            raise RuntimeError(f"cannot handle {payload['n']}")

    predictor = LoadedPredictor(Broken())
    with caplog.at_level(logging.ERROR, logger="tritonize"):
        replies = [handle_request(predictor, b'{"n": %d}' % i, "{}", ParameterRules("^x-")) for i in range(3)]
    assert [r.status for r in replies] == [500] * 3
    assert [r.message for r in replies] == [f"predict() failed: RuntimeError: cannot handle {i}" for i in range(3)]
    tracebacks = [r for r in caplog.records if "Traceback" in r.getMessage()]
    assert len(tracebacks) == 1 and "cannot handle 0" in tracebacks[0].getMessage()
