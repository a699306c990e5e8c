"""Cortex's server_side_batching -> Triton dynamic batching settings."""

from dataclasses import dataclass

from tritonize.adapter.spec_values import check_keys, parse_duration_us  # noqa: F401  (re-exported)
from tritonize.errors import SpecError

# Requests Triton may hand one execute() call when the predictor takes one request at a time
# (execute() then answers them one after the other, and Triton sends the answers when it returns).
# One instance: up to 32, which halves the IPC per request of a cheap predictor (a JSON echo: ~9k
# vs ~4.5k req/s). Several instances: 1, so a queued request goes to the next free instance rather
# than waiting behind another instance's batch while one idles (50 ms predictor, 2 instances,
# concurrency 4: p99 107 vs 266 ms). benchmarks/NOTES.md "Head-of-line blocking".
DEFAULT_MAX_BATCH_SIZE = 32
MULTI_INSTANCE_MAX_BATCH_SIZE = 1
# 0 = no limit (Triton's default). A limit makes a full queue answer 503 at once, but on
# Triton 2.51 any default_queue_policy cost a JSON echo 13x its throughput and added
# ~500 ms stalls at concurrency 32 (benchmarks/NOTES.md), so it is opt-in.
DEFAULT_MAX_QUEUE_SIZE = 0


@dataclass
class Batching:
    """Triton-level batching for one API.

    predictor_batching: the predictor opted in (server_side_batching) and gets lists.
    """

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_queue_delay_us: int = 0
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    predictor_batching: bool = False


def non_negative_int(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{where}: expected an integer >= 0 (0: no limit), got {value!r}")
    return value


def positive_int(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: expected a positive integer, got {value!r}")
    return value


def parse_batching(section, where, max_queue_size=None):
    """predictor.server_side_batching (a mapping or None) -> Batching."""
    batching = Batching()
    if max_queue_size is not None:
        batching.max_queue_size = non_negative_int(max_queue_size, f"{where}.max_queue_size")
    if section is None:
        return batching
    if not isinstance(section, dict):
        raise SpecError(f"{where}: expected a mapping with max_batch_size and batch_interval")
    check_keys(section, ("max_batch_size", "batch_interval", "max_queue_size"), where)
    if "max_batch_size" not in section:
        raise SpecError(f"{where}.max_batch_size: required")
    batching.max_batch_size = positive_int(section["max_batch_size"], f"{where}.max_batch_size")
    if "batch_interval" in section:
        batching.max_queue_delay_us = parse_duration_us(section["batch_interval"], f"{where}.batch_interval")
    if "max_queue_size" in section:
        batching.max_queue_size = non_negative_int(section["max_queue_size"], f"{where}.max_queue_size")
    batching.predictor_batching = True
    return batching


def triton_max_batch_size(batching, single_instance):
    """The model config's max_batch_size: the predictor's own batch size with server_side_batching,
    else what suits one-request-at-a-time predictors for the API's instance count."""
    if batching.predictor_batching:
        return batching.max_batch_size
    return DEFAULT_MAX_BATCH_SIZE if single_instance else MULTI_INSTANCE_MAX_BATCH_SIZE
