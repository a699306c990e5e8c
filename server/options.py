"""Server settings shared by every launcher (local binary, Docker)."""

import os
from dataclasses import dataclass, field, replace

from tritonize.adapter.runtime.constants import (
    ADMIN_TOKEN_ENV,  # noqa: F401  (re-exported for the launchers)
    ADMIN_TOKEN_HEADER,
    DEBUG_ERRORS_ENV,
    DEFAULT_CORTEX_PORT,
    DEFAULT_HEADER_PATTERN,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORTS,
    GRPC_ADMIN_TOKEN_HEADER,  # noqa: F401
    HEADER_PATTERN_ENV,
    MAX_BODY_ENV,
    REQUEST_TIMEOUT_ENV,
    SENSITIVE_HEADERS_ENV,
)
from tritonize.adapter.runtime.params import forwarded_header_pattern, reserved_names_matched
from tritonize.adapter.runtime.repository_model import batch_models, startup_models
from tritonize.errors import ServeError

# Readiness watchers (Kubernetes endpoints, nginx health checks) poll every second or two.
DEFAULT_DRAIN_NOTICE_S = 2.0


@dataclass
class ServerOptions:
    model_repository: str
    host: str = "127.0.0.1"
    http_port: int = DEFAULT_PORTS["http"]
    grpc_port: int = DEFAULT_PORTS["grpc"]
    metrics_port: int = DEFAULT_PORTS["metrics"]
    # Request headers matching this (case-insensitive) regex reach predictors as `headers`.
    header_pattern: str = DEFAULT_HEADER_PATTERN
    forward_sensitive_headers: bool = False
    exit_timeout_s: int = 10
    # serve --drain-notice: on SIGTERM, how long /v2/health/ready says false while requests are still
    # answered, before the drain refuses new ones: time for load balancers to take this server out.
    # None: DEFAULT_DRAIN_NOTICE_S when serving beyond loopback (--host), 0 on 127.0.0.1.
    drain_notice_s: float | None = None
    log_verbose: int = 0
    extra_args: list = field(default_factory=list)
    # serve --cpu: run models built for GPUs on CPU instances (local testing on a machine without GPUs).
    cpu_only: bool = False
    # Token for the admin APIs (RESTRICTED_APIS); None leaves them open (see restricted_api_args).
    admin_token: str | None = None
    # serve --exit-on-error: stop if any API fails to load (default: serve the others).
    exit_on_error: bool = False
    # serve --max-body-size: bigger request bodies are answered 400 by the runtime.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # serve --latency-percentiles: Triton's p50/p99 summaries in /metrics. Off by default: on
    # Triton 2.51 they cost a JSON echo ~20-25 % of its throughput (benchmarks/NOTES.md);
    # `tritonize status` shows mean latencies from the statistics endpoint without them.
    latency_percentiles: bool = False
    # serve --debug-errors: a 500's body also carries the predictor's exception text (development only).
    debug_errors: bool = False
    # serve --cortex-port / --no-cortex: the Cortex endpoint (POST /<api>, cortex_endpoint/); None: not started.
    cortex_port: int = DEFAULT_CORTEX_PORT
    # serve --request-timeout: seconds, for the APIs whose spec sets no tritonize.request_timeout; None: none.
    request_timeout_s: float | None = None
    # serve --job-store: where BatchAPI jobs are kept (batch/store.py); None: $TRITONIZE_JOB_STORE, else a
    # folder under ~/.cache/tritonize/jobs/ keyed by the repository's path.
    job_store: str | None = None

    def __post_init__(self):
        self.model_repository = os.path.abspath(self.model_repository)
        if self.drain_notice_s is None:
            self.drain_notice_s = 0.0 if self.host in ("127.0.0.1", "localhost", "::1") else DEFAULT_DRAIN_NOTICE_S
        check_header_pattern(self.header_pattern)


def check_header_pattern(pattern):
    """A pattern that forwards a header named like a reserved request parameter would let it change decoding."""
    matched = reserved_names_matched(pattern)
    if matched:
        raise ServeError(
            f"--header-pattern {pattern!r} also matches {', '.join(matched)}: request parameters tritonize reserves "
            "(a header of that name would change how the body is decoded). Use a pattern that cannot match "
            "them, e.g. '^[a-z0-9-]+$' for every header without '_'"
        )


def tritonserver_args(options, model_repository):
    """The flags every launcher passes to tritonserver (paths as tritonserver sees them)."""
    # --forward-sensitive-headers adds those names: Triton would not forward them otherwise.
    triton_pattern = forwarded_header_pattern(options.header_pattern, options.forward_sensitive_headers)
    args = [
        f"--model-repository={model_repository}",
        # tritonize writes complete configs; auto-complete would start an extra stub per model (~1.2 s).
        "--disable-auto-complete-config",
        f"--http-address={options.host}",
        f"--grpc-address={options.host}",
        f"--metrics-address={options.host}",
        f"--http-port={options.http_port}",
        f"--grpc-port={options.grpc_port}",
        f"--metrics-port={options.metrics_port}",
        f"--http-header-forward-pattern={triton_pattern}",
        f"--grpc-header-forward-pattern={triton_pattern}",
        f"--exit-timeout-secs={options.exit_timeout_s}",
        "--allow-sagemaker=false",
        "--allow-vertex-ai=false",
    ]
    if options.latency_percentiles:
        # p50/p99 request and queue times in /metrics (nv_inference_*_summary_us): `tritonize status`, Prometheus.
        args.append("--metrics-config=summary_latencies=true")
    args += restricted_api_args(options)
    if options.log_verbose:
        args.append(f"--log-verbose={options.log_verbose}")
    return args + list(options.extra_args)


# Admin endpoints that need the token header; health, metadata, model-config and inference stay open.
RESTRICTED_APIS = ("model-repository", "shared-memory", "statistics", "trace", "logging")


def restricted_api_args(options):
    """Triton answers 403 on RESTRICTED_APIS unless the request has `tritonize-admin-token: <token>`."""
    if not options.admin_token:
        return []
    rule = f"{','.join(RESTRICTED_APIS)}:{ADMIN_TOKEN_HEADER}={options.admin_token}"
    return [f"--http-restricted-api={rule}", f"--grpc-restricted-protocol={rule}"]


def model_control_args(options):
    """Explicit model control, so the launcher can reload a model whose stub died (server/watchdog.py).

    Triton keeps serving the models that loaded when one fails; the launcher decides
    whether that stops the server (options.exit_on_error). A BatchAPI's model is not loaded at
    start: each job loads it with its own config (adapter/runtime/repository_model.batch_load_config).
    """
    if batch_models(options.model_repository):
        load = [f"--load-model={name}" for name in startup_models(options.model_repository)]
    else:
        load = ["--load-model=*"]
    return ["--model-control-mode=explicit", *load, "--exit-on-error=false"]


def runtime_environment(options):
    """Variables the runtime inside each stub reads (it inherits tritonserver's environment)."""
    env = {
        HEADER_PATTERN_ENV: options.header_pattern,
        SENSITIVE_HEADERS_ENV: "1" if options.forward_sensitive_headers else "0",
    }
    if options.max_body_bytes != DEFAULT_MAX_BODY_BYTES:
        env[MAX_BODY_ENV] = str(options.max_body_bytes)
    if options.debug_errors:
        env[DEBUG_ERRORS_ENV] = "1"
    if options.request_timeout_s:
        env[REQUEST_TIMEOUT_ENV] = f"{options.request_timeout_s:g}"
    return env


def container_options(options, **changes):
    """The same server inside a container (Docker, a pod): every address, Triton's default ports."""
    ports = {f"{name}_port": port for name, port in DEFAULT_PORTS.items()}
    return replace(options, **{"host": "0.0.0.0", **ports, **changes})
