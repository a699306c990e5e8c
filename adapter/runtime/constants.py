"""Every name tritonize's parts agree on, defined once.

Lives in the runtime because the runtime is copied into each repository and may import
nothing of tritonize's; the build path, the launchers, the client and the manifests import
these from here.
"""

# The wire contract (public API, see README).
INPUT_NAME = "payload"
OUTPUT_NAME = "response"
CONTENT_TYPE_OUTPUT_NAME = "content_type"
# The request parameter carrying the body's content type.
CONTENT_TYPE_PARAMETER = "content_type"
# The request parameter carrying the URL query string, urlencoded as sent (repeated keys and
# names Triton reserves, such as `timeout`, survive); the Cortex endpoint (front/) sends it.
QUERY_PARAMETER = "tritonize_query"

# What a model version folder holds besides model.py.
SETTINGS_FILE = "tritonize_api.json"
PROJECT_DIR = "project"
RUNTIME_PACKAGE = "tritonize_runtime"

# The Cortex predictor contract: the arguments predict()/post_predict() may name, in this order.
PREDICT_ARGS = ("payload", "query_params", "headers", "batch_id")
POST_PREDICT_ARGS = ("response", "payload", "query_params", "headers")

# Environment variables set by `tritonize serve` for tritonserver, inherited by every stub.
MAX_BODY_ENV = "TRITONIZE_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 64 << 20
HEADER_PATTERN_ENV = "TRITONIZE_HEADER_PATTERN"
DEFAULT_HEADER_PATTERN = "^x-"
SENSITIVE_HEADERS_ENV = "TRITONIZE_FORWARD_SENSITIVE_HEADERS"
# Where a model's load failure is written for `serve` to show.
STATUS_DIR_ENV = "TRITONIZE_STATUS_DIR"
# Set per instance process: "cuda:0" (its one visible GPU) or "cpu", and the GPU's server-wide id.
DEVICE_ENV = "TRITONIZE_DEVICE"
GPU_ID_ENV = "TRITONIZE_GPU_ID"
# A model-config parameter whose new value makes Triton reload a model with an unchanged config.
RELOAD_PARAMETER = "TRITONIZE_RELOAD"

# Admin APIs: the header Triton checks on restricted endpoints, and where the token comes from.
ADMIN_TOKEN_HEADER = "tritonize-admin-token"
# Triton prefixes the key of a restricted gRPC protocol's metadata.
GRPC_ADMIN_TOKEN_HEADER = "triton-grpc-protocol-" + ADMIN_TOKEN_HEADER
ADMIN_TOKEN_ENV = "TRITONIZE_ADMIN_TOKEN"

# Counter {model, status}: error responses of the runtime (Triton 2.51 counts them as successes).
ERROR_METRIC = "tritonize_request_errors"

# Triton's default ports (the container's, and `serve`'s defaults).
DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
# The Cortex endpoint's (front/, POST /<api>) default port, beside Triton's.
DEFAULT_CORTEX_PORT = 8080
# Where clients look when given no --url.
DEFAULT_URLS = {protocol: f"127.0.0.1:{DEFAULT_PORTS[protocol]}" for protocol in ("http", "grpc")}
