"""Errors a request can end with, each carrying the HTTP status it maps to.

Triton's python backend can only report a few error codes. The HTTP status Triton 2.51
answers /infer with, per code (measured): INVALID_ARG 400, NOT_FOUND 404, INTERNAL 500,
UNSUPPORTED 501, UNAVAILABLE 503; triton_code_for_status picks the nearest.

Failures of predictor code reach clients as Cortex sent them: 500 `internal server
error`, plus an error id that also tags the traceback in the server log.
"""

import logging
import os
import secrets
import traceback

from .constants import DEBUG_ERRORS_ENV
from .failure_log import failures

log = logging.getLogger("tritonize")


def triton_code_for_status(status):
    """The Triton error code whose HTTP status is closest to `status`."""
    if status == 404:
        return "NOT_FOUND"
    if status == 501:
        return "UNSUPPORTED"
    if status in (429, 503):
        return "UNAVAILABLE"
    if 400 <= status < 500:
        return "INVALID_ARG"
    return "INTERNAL"


class RequestError(Exception):
    """A request that cannot be answered with a 2xx; `status` is HTTP-style."""

    status = 500

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(RequestError):
    """The client sent something the predictor cannot be called with (400)."""

    status = 400


class PredictorFailure(RequestError):
    """The predictor returned something that cannot be sent (500); the client sees an InternalError."""

    status = 500


class InternalError(RequestError):
    """What the client gets for a failure in predictor code: `internal server error (error id X)`.

    With TRITONIZE_DEBUG_ERRORS=1 (serve --debug-errors, tritonize test) the exception text follows.
    """

    status = 500

    def __init__(self, detail):
        self.error_id = secrets.token_hex(6)
        message = f"internal server error (error id {self.error_id})"
        if os.environ.get(DEBUG_ERRORS_ENV) == "1":  # read on the error path only
            message += f": {detail}"
        super().__init__(message)


class PredictorLoadError(Exception):
    """The predictor could not be imported or constructed."""


def printable(text):
    """`text` with lone surrogates escaped, so that it can always be encoded as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def describe(exc):
    """'ValueError: message', even for an exception whose str() fails or holds surrogates."""
    try:
        text = str(exc)
    except BaseException:
        text = "<str() of the exception failed>"
    return printable(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def log_failure(what, exc, error_id=None):
    """Log `what` with the exception's traceback (tritonize's own frames left out); never raises.

    A failure identical to one logged within the window (failure_log.py) gets one line instead,
    naming the error id whose entry holds the traceback.
    """
    tag = f" [error id {error_id}]" if error_id else ""
    try:
        earlier = failures.repeat_of(what, exc, error_id)
        if earlier is not None:
            log.error("%s%s: %s (traceback as logged for %s)", what, tag, describe(exc), earlier)
            return
        report = traceback.TracebackException.from_exception(exc)
        frames = [frame for frame in report.stack if not frame.filename.startswith(_RUNTIME_DIR)]
        report.stack = traceback.StackSummary.from_list(frames or report.stack)
        details = "".join(report.format())
    except BaseException:
        details = describe(exc)
    repeats = failures.repeats_note(what, exc)
    log.error("%s%s%s:\n%s", what, tag, repeats, printable(details).rstrip())


def internal_error(what, exc=None, detail=None):
    """The InternalError for a failure in predictor code, logged under its id (traceback of exc, or detail)."""
    error = InternalError(detail if detail is not None else describe(exc))
    if exc is not None:
        log_failure(what, exc, error.error_id)
    else:
        log.error("%s [error id %s]: %s", what, error.error_id, printable(detail))
    return error


def client_error(error):
    """The error the client may see: a PredictorFailure's reason goes to the log, not to the client."""
    if isinstance(error, PredictorFailure):
        return internal_error("predictor contract violated", detail=error.message)
    return error
