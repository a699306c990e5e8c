"""What one request gets back (a Reply), and the error Replies every stage of the pipeline uses."""

from dataclasses import dataclass

from .codec import error_from_http_exception
from .errors import client_error, internal_error, printable

TEXT = "text/plain; charset=utf-8"


@dataclass
class Reply:
    """What goes back to the client: a 2xx body or an error message."""

    status: int
    body: bytes
    content_type: str

    @property
    def ok(self):
        return 200 <= self.status < 300

    @property
    def message(self):
        return self.body.decode("utf-8", errors="replace")


def error_reply(error):
    """A RequestError -> its Reply (a PredictorFailure's reason goes to the log, the client gets a 500)."""
    error = client_error(error)
    return Reply(error.status, printable(error.message).encode("utf-8"), TEXT)


def text_reply(status, message):
    """An error Reply with a message of tritonize's own."""
    return Reply(status, message.encode("utf-8"), TEXT)


def internal_reply(what, exc):
    """The 500 for a failure outside predictor code (logged with its error id)."""
    return error_reply(internal_error(what, exc))


def error_for_exception(exc, what="predict()"):
    """An exception from the predictor -> the RequestError the client sees (HTTPException's own, else 500)."""
    try:
        error = error_from_http_exception(exc)
    except BaseException:  # an HTTPException look-alike whose attributes raise
        error = None
    return internal_error(f"{what} failed", exc) if error is None else error


# request.parameters() raised UnicodeDecodeError: Triton could not hand over this request's headers/parameters.
BAD_PARAMETERS_REPLY = text_reply(
    400, "request parameters or forwarded headers are not valid UTF-8 (a header or gRPC metadata value, or a parameter)"
)
