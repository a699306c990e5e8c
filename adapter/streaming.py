"""Which APIs stream: a predict() that yields (seen in the source), or the spec's `tritonize.stream`.

A streaming API becomes a decoupled Triton model (adapter/model_config.py) whose responses
leave from stream threads (adapter/runtime/streaming.py); `predictor.threads_per_process`
sets how many streams one instance runs at once.
"""

from tritonize.adapter.runtime.constants import DEFAULT_STREAM_THREADS
from tritonize.errors import SpecError

THREADS_KEY = "predictor.threads_per_process"
# Each is a thread started when the instance loads: a typo like 10000 should not start that many.
MAX_STREAM_THREADS = 1024


def parse_streaming(entry, predictor, where):
    """-> (tritonize.stream: True / False / None for "decide from the source", threads_per_process or None)."""
    stream = (entry.get("tritonize") or {}).get("stream") if isinstance(entry.get("tritonize"), dict) else None
    if stream is not None and not isinstance(stream, bool):
        raise SpecError(f"{where}.tritonize.stream: expected true or false, got {stream!r}")
    threads = predictor.get("threads_per_process")
    if threads is not None:
        parse_stream_threads(threads, f"{where}.{THREADS_KEY}")
    return stream, threads


def parse_stream_threads(value, where):
    """predictor.threads_per_process: 1..MAX_STREAM_THREADS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STREAM_THREADS:
        raise SpecError(f"{where}: expected a positive integer up to {MAX_STREAM_THREADS}, got {value!r}")
    return value


def resolve_streaming(api, predict_yields, not_needed_reason):
    """Decide api.streaming from the spec and the source (predict_yields: True/False, None if unknown)."""
    if api.stream is False and predict_yields:
        raise SpecError(
            f"{api.name}: predict() yields (a streaming API) but the spec sets tritonize.stream: false; "
            "remove that line, or return the whole answer instead of yielding it"
        )
    api.streaming = api.stream if api.stream is not None else bool(predict_yields)
    if api.streaming and api.tensors:
        raise SpecError(
            f"{api.name}: streaming is for body APIs (JSON, text, bytes); a typed tensor API cannot stream yet "
            "(drop predictor.tensors, or return instead of yield)"
        )
    if not api.streaming and api.stream_threads is not None:
        warning = f"{api.name}: ignored: {THREADS_KEY} ({not_needed_reason})"
        if warning not in api.warnings:
            api.warnings.append(warning)


def stream_threads(api):
    return api.stream_threads or DEFAULT_STREAM_THREADS


def describe_streaming(api):
    """', streaming (N streams at once per instance)' for `build`'s summary; '' for other APIs."""
    return f", streaming ({stream_threads(api)} streams at once per instance)" if api.streaming else ""
