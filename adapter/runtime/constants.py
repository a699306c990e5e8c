"""Every name tritonize's parts agree on, defined once.

Lives in the runtime because the runtime is copied into each repository and may import
nothing of tritonize's; the build path, the launchers, the client and the manifests import
these from here.
"""

# The wire contract (public API, see README).
INPUT_NAME = "payload"
OUTPUT_NAME = "response"
CONTENT_TYPE_OUTPUT_NAME = "content_type"
# A predictor's 2xx status other than 200 (Response(status_code=201)), as text, only in such answers
# (Triton 2.51's python backend has no response parameters): the Cortex endpoint sends it as the HTTP
# status; Triton's own /infer answers 200 and carries it as this output.
STATUS_OUTPUT_NAME = "status"
# The request parameter carrying the body's content type.
CONTENT_TYPE_PARAMETER = "content_type"
# The request parameter carrying the URL query string, urlencoded as sent (repeated keys and
# names Triton reserves, such as `timeout`, survive); the Cortex endpoint (cortex_endpoint/) sends it.
QUERY_PARAMETER = "tritonize_query"

# Cortex's API kinds that are Triton models (ApiSettings.kind).
REALTIME_API = "RealtimeAPI"
BATCH_API = "BatchAPI"
# A BatchAPI's wire contract (adapter/runtime/batch.py): one BYTES input holding the batch as JSON text
# (a list of items; null for the completion call), one BYTES output {"ok": true}; the request parameters
# naming the batch and asking for on_job_complete(); the model-config parameter holding the job's spec.
BATCH_INPUT_NAME = "BATCH"
BATCH_OUTPUT_NAME = "RESULT"
BATCH_ID_PARAMETER = "batch_id"
ON_JOB_COMPLETE_PARAMETER = "tritonize_on_job_complete"
JOB_SPEC_PARAMETER = "tritonize_job_spec"
# A predictor exception's message in the batch's error response (the job log shows it).
BATCH_ERROR_FORMAT = "{method}() raised {type}: {message}"
BATCH_ERROR_MESSAGE_CHARS = 500
# Beside a BatchAPI's config.pbtxt: the same config as JSON, what a job loads the model with.
BATCH_CONFIG_FILE = "tritonize_batch_config.json"

# What a model version folder holds besides model.py.
SETTINGS_FILE = "tritonize_api.json"
PROJECT_DIR = "project"
RUNTIME_PACKAGE = "tritonize_runtime"

# The Cortex predictor contract: the arguments predict()/post_predict() may name, in this order.
PREDICT_ARGS = ("payload", "query_params", "headers")
# ... a BatchAPI's predict() (payload: a list of items; batch_id: the batch's id), and its __init__.
BATCH_PREDICT_ARGS = ("payload", "batch_id")
BATCH_INIT_ARGS = ("config", "metrics_client", "job_spec")
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
# The Cortex endpoint's (cortex_endpoint/, POST /<api>) default port, beside Triton's.
DEFAULT_CORTEX_PORT = 8080
# BatchAPI jobs in images and pods: the job store's folder, a volume (its env: batch/store.py JOB_STORE_ENV).
IMAGE_JOB_STORE = "/var/lib/tritonize/jobs"
# The key of the Cortex endpoint's TrafficSplitter counters (GET /_tritonize/traffic-splitters; `tritonize status`).
TRAFFIC_SPLITTERS_KEY = "traffic_splitters"
TRAFFIC_SPLITTERS_PATH = "/_tritonize/traffic-splitters"
# A batch job's log on the Cortex endpoint: JOB_LOG_PATH.format(api=..., job_id=...) (text/plain).
JOB_LOG_PATH = "/_tritonize/jobs/{api}/{job_id}/log"
# Where clients look when given no --url.
DEFAULT_URLS = {protocol: f"127.0.0.1:{DEFAULT_PORTS[protocol]}" for protocol in ("http", "grpc")}

# A predictor failing the same way (same exception type, same frames) logs its traceback once per
# this many seconds; the repeats in between are counted in the next one logged.
FAILURE_LOG_WINDOW_S = 60.0

# Request parameters with a meaning of their own: never headers, never query params.
RESERVED_PARAMETERS = (CONTENT_TYPE_PARAMETER, QUERY_PARAMETER)
# Passed to predictors only with `serve --forward-sensitive-headers` (which adds them to Triton's pattern).
SENSITIVE_HEADERS = ("authorization", "proxy-authorization", "cookie", "host", "content-length")
# Never passed to predictors: the admin token, and what describes Triton's KServe envelope, not the body.
NEVER_FORWARDED_HEADERS = (
    ADMIN_TOKEN_HEADER,
    GRPC_ADMIN_TOKEN_HEADER,
    "content-type",
    "inference-header-content-length",
)
# More than this many request parameters, headers, query params or form fields is refused (400).
MAX_PARAMETERS = 1000
MAX_FORM_FIELDS = 1000
# "1": a 500's body also carries the exception text (`serve --debug-errors`, `tritonize test`).
DEBUG_ERRORS_ENV = "TRITONIZE_DEBUG_ERRORS"
# Arguments Cortex passed to a predictor's __init__ that tritonize provides.
INIT_ARGS = ("config", "metrics_client", "python_client")
# metrics_client: names refused (Cortex's own prefixes, Triton's, tritonize's).
RESERVED_METRIC_PREFIXES = ("cortex_", "istio_", "nv_", "tritonize_")
# metrics_client.histogram(): fixed buckets, 1-2.5-5 steps from 0.001 to 100000 (ms and s values both fit).
HISTOGRAM_BUCKETS = tuple(m * 10.0**e for e in range(-3, 5) for m in (1, 2.5, 5)) + (1e5,)
# Metric changes are sent to Triton by a background thread this often (one Triton update is an IPC).
METRICS_FLUSH_INTERVAL_S = 1.0
# Histogram observations kept per series between two flushes; more are dropped.
MAX_PENDING_OBSERVATIONS = 10000
# post_predict calls waiting for the background worker; when full, new ones are dropped and counted.
POST_PREDICT_QUEUE_SIZE = 1000
# ... and at most this many request bytes (bodies / input tensors) held by the waiting calls.
POST_PREDICT_QUEUE_BYTES = 256 << 20
POST_PREDICT_WARN_EVERY_S = 10.0
POST_PREDICT_DROPPED_METRIC = "tritonize_post_predict_dropped"
# At instance shutdown, queued post_predict calls get this long to finish.
POST_PREDICT_DRAIN_S = 5.0

# python_client (Cortex's multi_model_reloading): the name Cortex gave the one model of `path`,
# how often the poller looks for new model versions (Cortex: 10 s; the spec's
# tritonize.model_poll_interval), where S3 models are downloaded to, and the gauge of the models
# each instance holds in memory.
SINGLE_MODEL_NAME = "_cortex_default"
DEFAULT_MODEL_POLL_INTERVAL_S = 10.0
MODEL_CACHE_DIR_ENV = "TRITONIZE_MODEL_CACHE_DIR"
LOADED_MODELS_METRIC = "tritonize_models_loaded"

# Streaming APIs (a predict() that yields; adapter/runtime/streaming.py).
# Streams one instance runs at once unless predictor.threads_per_process says otherwise.
DEFAULT_STREAM_THREADS = 16
# How often a running stream asks Triton whether its client went away: each ask is an IPC round
# trip to the server process (as costly as sending a chunk), so not before every chunk.
CANCEL_CHECK_INTERVAL_S = 0.02
# An error chunk's message: "[<HTTP status>] <message>"; SSE events and gRPC stream errors carry
# no status code of their own, so the status travels in the message.
STREAM_ERROR_FORMAT = "[{status}] {message}"
# Triton's HTTP streaming endpoint (server-sent events); gRPC streams use ModelStreamInfer.
GENERATE_STREAM_PATH = "/v2/models/{api}/generate_stream"

# Request timeout (adapter/runtime/request_timeout.py): an instance whose execute() runs longer ends
# its process, so its requests fail at once and `serve`'s watchdog reloads it. The spec's
# `tritonize.request_timeout` is stored in the settings file; `serve --request-timeout` sets the
# default of the others through the environment (seconds; 0: none).
REQUEST_TIMEOUT_KEY = "request_timeout"
REQUEST_TIMEOUT_ENV = "TRITONIZE_REQUEST_TIMEOUT_S"
# How often the timeout thread looks at the running execute() (at most; shorter for short timeouts).
REQUEST_TIMEOUT_CHECK_S = 1.0
# The instance process's exit status when it ends itself for a timeout (as timeout(1)'s).
REQUEST_TIMEOUT_EXIT_CODE = 124
