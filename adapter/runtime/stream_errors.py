"""Error chunks of a stream: "[<HTTP status>] <message>" (STREAM_ERROR_FORMAT), read back here.

Its own module (stdlib and constants only) so the Cortex endpoint's zipapp (cortex_endpoint/zipapp.py) and
tritonize.Client parse exactly what the runtime writes.
"""

import re

from .constants import STREAM_ERROR_FORMAT

# A stream error that carries no status of ours: Triton refused the request itself (answered as its
# HTTP port answers such requests).
UNTAGGED_ERROR_STATUS = 400

_ERROR_CHUNK = re.compile(
    "^" + re.escape(STREAM_ERROR_FORMAT).replace(r"\{status\}", r"(\d{3})").replace(r"\{message\}", "(.*)") + "$",
    re.DOTALL,
)


def parse_error_chunk(message):
    """An error chunk's message -> (status, message), or None if it is not one of ours."""
    match = _ERROR_CHUNK.match(message)
    return (int(match.group(1)), match.group(2)) if match else None


def stream_error_status(message, default_status=UNTAGGED_ERROR_STATUS):
    """Any stream error message -> (HTTP status, message), as tritonize.Client and the Cortex endpoint report it."""
    parsed = parse_error_chunk(message)
    if parsed:
        return parsed
    if "unknown model" in message:  # gRPC streams carry no code; HTTP answers this 404
        return 404, message
    return default_status, message
