"""Errors a request can end with, each carrying the HTTP status it maps to.

Triton's python backend can only report a few error codes. The HTTP status Triton 2.51
answers /infer with, per code (measured): INVALID_ARG 400, NOT_FOUND 404, INTERNAL 500,
UNSUPPORTED 501, UNAVAILABLE 503; triton_code_for_status picks the nearest.
"""


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
    """The predictor raised, or returned something that cannot be sent (500)."""

    status = 500


class PredictorLoadError(Exception):
    """The predictor could not be imported or constructed."""
