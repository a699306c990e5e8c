"""The part of tritonize that runs inside Triton (and in `tritonize test`).

Copied into every model repository as the package `tritonize_runtime` next to
`model.py`. It must import only the standard library and numpy, and must use
relative imports only, so it works both as `tritonize.adapter.runtime` and as
the copied `tritonize_runtime`.
"""

# The wire contract (public API, see README): re-exported by adapter/wire.py.
INPUT_NAME = "payload"
OUTPUT_NAME = "response"
CONTENT_TYPE_OUTPUT_NAME = "content_type"
SETTINGS_FILE = "tritonize_api.json"
PROJECT_DIR = "project"
# Set by `tritonize serve --max-body-size`: bigger request bodies are refused (400) before decoding.
MAX_BODY_ENV = "TRITONIZE_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 64 << 20
