"""The wire contract (public API): tensor names every generated model uses.

Defined once in the runtime package, which is copied into each repository.
"""

from tritonize.adapter.runtime import CONTENT_TYPE_OUTPUT_NAME, INPUT_NAME, OUTPUT_NAME, PROJECT_DIR, SETTINGS_FILE  # noqa: F401
from tritonize.adapter.runtime.params import CONTENT_TYPE_PARAMETER, DEFAULT_HEADER_PATTERN  # noqa: F401
