"""tritonize.Client: call a tritonize API over HTTP or gRPC with Cortex-like arguments."""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from collections.abc import Callable, Generator, Mapping
from typing import Any

import numpy as np

from tritonize.adapter.runtime.codec import (
    BINARY,
    JSON,
    TEXT,
    decode_payload,
    is_json_media_type,
    parse_content_type,
)
from tritonize.adapter.runtime.constants import (
    CONTENT_TYPE_OUTPUT_NAME,
    DEFAULT_CORTEX_PORT,
    DEFAULT_URLS,
    INPUT_NAME,
    OUTPUT_NAME,
)
from tritonize.adapter.runtime.params import request_parameters
from tritonize.client.headers import grpc_metadata, http_headers
from tritonize.client.jobs import JobApi, build_submission
from tritonize.errors import PredictError, ServerUnreachable

# tritonclient 2.51 pins geventhttpclient <= 2.0.2, whose TLS needs ssl.wrap_socket (gone in Python 3.12).
HTTPS_NEEDS_PYTHON_3_11 = (
    "https:// with protocol='http' needs Python 3.10 or 3.11 (tritonclient 2.51's HTTP client, pinned to "
    "geventhttpclient 2.0.2, has no TLS on 3.12): use grpcs:// with protocol='grpc', or Python 3.11"
)

# gRPC status -> the HTTP status Triton gives the same error over HTTP.
GRPC_TO_HTTP = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "ALREADY_EXISTS": 400,
    "CANCELLED": 400,
    "UNKNOWN": 400,
    "DEADLINE_EXCEEDED": 504,
    "RESOURCE_EXHAUSTED": 503,
}


def encode_payload(payload: Any, content_type: str | None = None) -> tuple[bytes, str]:
    """-> (body bytes, content type): bytes as binary, str as text, the rest as JSON."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload), content_type or BINARY
    if isinstance(payload, str):
        return payload.encode("utf-8"), content_type or TEXT
    return json.dumps(payload).encode("utf-8"), content_type or JSON


# URL schemes -> TLS or not; without a scheme, plain (as Triton serves by default).
_TLS_SCHEMES = {"http": False, "grpc": False, "https": True, "grpcs": True}
# How long the gRPC client waits for a connection before saying the server is not there.
CONNECT_TIMEOUT_S = 10.0


def split_url(url: str) -> tuple[str, bool]:
    """'https://host:8000/' -> ('host:8000', True); ValueError for a scheme tritonize cannot honour."""
    scheme, sep, address = url.partition("://")
    if not sep:
        return url.rstrip("/"), False
    tls = _TLS_SCHEMES.get(scheme.lower())
    if tls is None:
        raise ValueError(f"unsupported URL scheme {scheme!r} in {url!r}: use http://, https://, grpc:// or grpcs://")
    return address.rstrip("/"), tls


def host_of(address: str) -> str:
    """'host:port', '[::1]:port', 'host' -> the host."""
    if address.startswith("["):
        return address[1 : address.find("]")]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def is_local_address(address: str) -> bool:
    """True for loopback and this machine's own addresses (never sent through a proxy)."""
    host = host_of(address)
    if host in ("localhost", ""):
        return True
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    for family, _, _, _, sockaddr in infos:
        ip = str(sockaddr[0])
        if ipaddress.ip_address(ip.split("%")[0]).is_loopback:
            return True
        try:  # bindable: one of this machine's addresses
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((ip, 0))
            return True
        except OSError:
            continue
    return False


def grpc_channel_args(address: str) -> list[tuple[str, Any]]:
    """tritonclient's own channel defaults, and no proxy to a local server (gRPC honours http_proxy)."""
    from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions

    keepalive = KeepAliveOptions()
    args: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
    ]
    if is_local_address(address):
        args.append(("grpc.enable_http_proxy", 0))
    return args


def _status_of(exc: Any) -> int:
    status = str(exc.status() or "")
    if status.isdigit():
        return int(status)
    name = status.rsplit(".", 1)[-1]
    return GRPC_TO_HTTP.get(name, 500)


def default_cortex_url(address: str) -> str:
    """The Cortex endpoint beside the Triton at 'host:port': the same host, the Cortex port."""
    host = host_of(address) or "127.0.0.1"
    return f"http://[{host}]:{DEFAULT_CORTEX_PORT}" if ":" in host else f"http://{host}:{DEFAULT_CORTEX_PORT}"


class Client:
    """Client("127.0.0.1:8000") for HTTP, Client("127.0.0.1:8001", protocol="grpc") for gRPC;
    Client("https://host:8000") (or grpcs://) talks TLS. Batch jobs go to the Cortex endpoint
    (cortex_url, default: the same host, port 8080)."""

    def __init__(
        self,
        url: str | None = None,
        protocol: str = "http",
        timeout_s: float = 60.0,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        cortex_url: str | None = None,
    ) -> None:
        self.protocol = protocol
        url, self.tls = split_url(url or DEFAULT_URLS.get(protocol, ""))
        self.url = url
        # The Cortex endpoint (batch jobs): default the same host, the Cortex port.
        self.cortex_url = cortex_url or default_cortex_url(url)
        self._connected = False
        if protocol == "http":
            import tritonclient.http as module

            if self.tls and sys.version_info >= (3, 12):
                raise ValueError(HTTPS_NEEDS_PYTHON_3_11)
            self._client = module.InferenceServerClient(
                url, connection_timeout=min(timeout_s, connect_timeout_s), network_timeout=timeout_s, ssl=self.tls
            )
        elif protocol == "grpc":
            import tritonclient.grpc as module

            self._client = module.InferenceServerClient(url, ssl=self.tls, channel_args=grpc_channel_args(url))
        else:
            raise ValueError(f"protocol must be 'http' or 'grpc', not {protocol!r}")
        self._module = module
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s

    def _connect(self) -> None:
        """gRPC: wait (at most connect_timeout_s) for the channel, so that a server that is not there is one
        clear ServerUnreachable, not a call hanging or a stream thread's traceback."""
        if self._connected or self.protocol != "grpc":
            return
        import grpc

        try:
            grpc.channel_ready_future(self._client._channel).result(timeout=self.connect_timeout_s)
        except grpc.FutureTimeoutError:
            raise ServerUnreachable(
                self.url, self.protocol, f"no connection within {self.connect_timeout_s:g} s"
            ) from None
        self._connected = True

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def predict_raw(
        self,
        api: str,
        body: bytes,
        content_type: str | None = None,
        query_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> tuple[bytes, str]:
        """Send raw body bytes -> (response body bytes, response content type)."""
        m = self._module
        inp = m.InferInput(INPUT_NAME, [1, 1], "BYTES")
        data = np.empty((1, 1), dtype=np.object_)
        data[0, 0] = body
        kwargs = {}
        if self.protocol == "http":
            inp.set_data_from_numpy(data, binary_data=True)
            outputs = [
                m.InferRequestedOutput(OUTPUT_NAME, binary_data=True),
                m.InferRequestedOutput(CONTENT_TYPE_OUTPUT_NAME, binary_data=True),
            ]
        else:
            inp.set_data_from_numpy(data)
            outputs = [m.InferRequestedOutput(OUTPUT_NAME), m.InferRequestedOutput(CONTENT_TYPE_OUTPUT_NAME)]
            kwargs["client_timeout"] = self.timeout_s
        # Query params travel URL-encoded in one parameter: repeated keys and names Triton reserves survive.
        parameters = request_parameters(query_params, content_type)
        # A repeated header (a list value): repeated gRPC metadata; joined with ', ' over HTTP.
        sent = grpc_metadata(headers) if self.protocol == "grpc" else http_headers(headers)
        self._connect()
        try:
            result = self._client.infer(
                api,
                [inp],
                outputs=outputs,
                parameters=parameters or None,
                headers=sent or None,
                **kwargs,
            )
        except m.InferenceServerException as exc:
            raise PredictError(_status_of(exc), _with_stream_hint(exc.message())) from None
        except OSError as exc:  # refused, reset, timed out: tritonclient's HTTP transport raises these as they are
            raise ServerUnreachable(self.url, self.protocol, exc) from None
        response_body = result.as_numpy(OUTPUT_NAME).reshape(-1)[0]
        response_type = result.as_numpy(CONTENT_TYPE_OUTPUT_NAME).reshape(-1)[0]
        return bytes(response_body), bytes(response_type).decode("utf-8")

    def predict(
        self,
        api: str,
        payload: Any,
        query_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Any:
        """Send payload (JSON-able, str or bytes) -> the decoded response (JSON, str or bytes)."""
        body, content_type = encode_payload(payload, content_type)
        response_body, response_type = self.predict_raw(api, body, content_type, query_params, headers)
        return decode_response(response_body, response_type)

    def stream_raw(
        self,
        api: str,
        body: bytes,
        content_type: str | None = None,
        query_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Generator[tuple[bytes, str], None, None]:
        """Send raw body bytes to a streaming API -> an iterator of (chunk body bytes, content type).

        HTTP: Triton's generate_stream (server-sent events; the body must be UTF-8 text and headers
        do not reach the predictor); gRPC: ModelStreamInfer on this client's one stream (one stream
        at a time per Client). An error chunk raises PredictError with its status. Leaving the loop
        early (break, close()) cancels the request: the predictor's generator is closed.
        """
        from . import streams

        if self.protocol == "http":
            chunks = streams.stream_http(
                self.url, api, body, content_type, query_params, headers, self.timeout_s, tls=self.tls
            )
        else:
            self._connect()
            chunks = streams.stream_grpc(
                self._client, self._module, api, body, content_type, query_params, headers, self.timeout_s
            )
        return _unreachable_as(chunks, self.url, self.protocol)

    def stream(
        self,
        api: str,
        payload: Any,
        query_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Generator[Any, None, None]:
        """Send payload to a streaming API -> an iterator over its decoded chunks (JSON, str or bytes)."""
        body, content_type = encode_payload(payload, content_type)
        return _decoded(self.stream_raw(api, body, content_type, query_params, headers))

    # Batch jobs (kind: BatchAPI), Cortex's job API on the Cortex endpoint. Errors: JobError with the status.

    def _job_api(self) -> JobApi:
        return JobApi(self.cortex_url, self.timeout_s)

    def submit_job(
        self,
        api: str,
        submission: Mapping[str, Any] | None = None,
        *,
        items: list | None = None,
        file_path_lister: list[str] | None = None,
        delimited_files: list[str] | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        config: Mapping[str, Any] | None = None,
        timeout: int | None = None,
        includes: list[str] | None = None,
        excludes: list[str] | None = None,
        dead_letter: str | None = None,
        max_receive_count: int | None = None,
        dry_run: bool = False,
    ) -> Any:
        """Submit a job -> Cortex's job spec (job_id, status, ...); dry_run=True -> the batches/files as text.

        Either a whole Cortex submission dict, or keywords (which also override the dict's values):
        `items` + `batch_size` (item_list), `file_path_lister`/`delimited_files` (paths: s3://, local,
        file://) with `includes`/`excludes`; `workers` (default 1), `config` (merged over the API's).
        """
        body = build_submission(
            workers=workers,
            items=items,
            file_path_lister=file_path_lister,
            delimited_files=delimited_files,
            batch_size=batch_size,
            includes=includes,
            excludes=excludes,
            config=config,
            timeout=timeout,
            dead_letter=dead_letter,
            max_receive_count=max_receive_count,
            base=submission,
        )
        return self._job_api().submit(api, body, dry_run=dry_run)

    def job_status(self, api: str, job_id: str) -> dict:
        """One job's status: Cortex's job_status (status, batches_in_queue, batch_metrics, times, ...)."""
        return self._job_api().get(api, job_id)["job_status"]

    def jobs(self, api: str) -> list[dict]:
        """The API's jobs (their job_status), newest first."""
        return self._job_api().list(api)

    def stop_job(self, api: str, job_id: str) -> dict:
        """Stop a job -> {"message": "stopped job <id>"}."""
        return self._job_api().stop(api, job_id)

    def job_log(self, api: str, job_id: str) -> str:
        """The job's log so far: each batch's outcome, a failed batch's error, the job's end."""
        return self._job_api().log(api, job_id)

    def wait_job(
        self,
        api: str,
        job_id: str,
        timeout: float | None = None,
        progress: Callable[[dict], object] | None = None,
        poll_s: float = 1.0,
    ) -> dict:
        """Wait for the job to end -> its final job_status (look at ["status"]: "status_succeeded" or not);
        progress(job_status) after each poll; TimeoutError after `timeout` s (the job keeps running)."""
        return self._job_api().wait(api, job_id, timeout=timeout, progress=progress, poll_s=poll_s)


def _decoded(chunks: Generator[tuple[bytes, str], None, None]) -> Generator[Any, None, None]:
    try:
        for body, content_type in chunks:
            yield decode_response(body, content_type)
    finally:
        chunks.close()


def _unreachable_as(
    chunks: Generator[tuple[bytes, str], None, None], url: str, protocol: str
) -> Generator[tuple[bytes, str], None, None]:
    try:
        yield from chunks
    except OSError as exc:
        raise ServerUnreachable(url, protocol, exc) from None
    finally:
        chunks.close()


def _with_stream_hint(message: str) -> str:
    if "decoupled transaction policy" in message:
        return message + " (a streaming API: use Client.stream(), `tritonize predict --stream` or generate_stream)"
    return message


def decode_response(body: bytes, content_type: str) -> Any:
    """JSON -> object, text -> str, anything else -> bytes (the payload rules, reused)."""
    media_type, _ = parse_content_type(content_type)
    if is_json_media_type(media_type) and not body.strip():
        return None
    return decode_payload(body, content_type)
