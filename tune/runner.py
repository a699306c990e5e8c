"""`tritonize tune`: build the API once, serve it on one Triton, and measure each candidate there.

A candidate is loaded through Triton's model control (the repository API's load with the
candidate's config, as `serve --watch` reloads): the old instances serve until the new ones are
ready, and no server restarts between candidates. The search itself is tune/search.py.
"""

from __future__ import annotations

import asyncio
import copy
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tritonize.adapter.build import load_apis
from tritonize.adapter.instances import apply_instance_settings
from tritonize.adapter.model_config import model_config_dict
from tritonize.adapter.repository import api_settings, build_repository
from tritonize.adapter.runtime.constants import RELOAD_PARAMETER
from tritonize.adapter.runtime.repository_model import VERSION_DIR, write_api_settings
from tritonize.client import loadgen
from tritonize.client.bench import Workload, model_metadata
from tritonize.errors import AdminError, ServeError
from tritonize.server.local_launcher import LocalTritonServer
from tritonize.server.options import ServerOptions
from tritonize.tune.search import (
    Budget,
    Dimension,
    Measurement,
    SearchResult,
    Settings,
    TuneError,
    brute_force,
    grid,
    quick_search,
    sweep,
)

# Settings a candidate sets (the names `tritonize tune` prints and writes back).
INSTANCES, MAX_BATCH_SIZE, BATCH_INTERVAL_US = "instances", "max_batch_size", "batch_interval_us"
# Geometric steps: a neighbour is worth measuring only if it differs enough to matter.
INSTANCE_STEPS = [1, 2, 4, 8, 16]
GPU_INSTANCE_STEPS = [1, 2, 3, 4]  # per GPU
BATCH_SIZE_STEPS = [1, 2, 4, 8, 16, 32, 64]
BATCH_INTERVAL_US_STEPS = [0, 1000, 2000, 5000, 10000, 20000, 50000]


@dataclass
class TuneOptions:
    budget: Budget
    data: bytes  # one request's body (the payload)
    content_type: str | None = None
    max_minutes: float = 10.0
    max_candidates: int | None = None
    level_s: float = 3.0  # measuring time per concurrency level
    warmup_s: float = 0.5
    max_concurrency: int = 64
    max_instances: int | None = None  # default: 4 x the CPU count on CPU (at least 8, at most 16)
    gpus: list[int] | str | None = None
    kind: str | None = None  # "cpu" or "gpu": override the spec's (compute.gpu), as `tritonize build --kind`
    # The predictor takes a list (server_side_batching) and a single payload: try batching off and on.
    try_batching: bool = False
    ready_timeout_s: float = 300.0
    exhaustive: bool = False  # measure every candidate instead of searching (no time or candidate limit)
    # The values tried for each setting (None: the defaults above); benchmarks/tune_bench.py narrows them.
    instance_steps: list[int] | None = None
    batch_size_steps: list[int] | None = None
    batch_interval_us_steps: list[int] | None = None


@dataclass
class TuneReport:
    source: str
    api: Any  # ApiSpec as built (the spec's own settings)
    start: Settings
    result: SearchResult
    search_space: int  # how many candidates a brute force would measure
    log: list[str] = field(default_factory=list)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def dimensions_for(api: Any, options: TuneOptions) -> tuple[list[Dimension], Settings]:
    """The search space and its start (the spec's own settings)."""
    if options.instance_steps:
        instance_steps = list(options.instance_steps)
    elif api.kind == "gpu":
        instance_steps = GPU_INSTANCE_STEPS
    else:
        # Sleeping (I/O-bound) predictors want more instances than cores; the search only climbs
        # as far as throughput improves.
        cap = options.max_instances or min(INSTANCE_STEPS[-1], max(8, 4 * (os.cpu_count() or 1)))
        instance_steps = [n for n in INSTANCE_STEPS if n <= cap] or [1]
    dims = [Dimension(INSTANCES, instance_steps)]
    start: Settings = {INSTANCES: api.instances, MAX_BATCH_SIZE: None, BATCH_INTERVAL_US: 0}
    if api.batching.predictor_batching or options.try_batching:
        off = [None] if options.try_batching else []  # it takes one payload too: batching off is a candidate
        batch_sizes = off + list(options.batch_size_steps or BATCH_SIZE_STEPS)
        dims.append(Dimension(MAX_BATCH_SIZE, batch_sizes, probe_first=True, couples_with=BATCH_INTERVAL_US))
        dims.append(Dimension(BATCH_INTERVAL_US, list(options.batch_interval_us_steps or BATCH_INTERVAL_US_STEPS)))
        if api.batching.predictor_batching:
            start[MAX_BATCH_SIZE] = api.batching.max_batch_size
            start[BATCH_INTERVAL_US] = api.batching.max_queue_delay_us
    return dims, start


def canonical(settings: Settings) -> Settings:
    """Without batching (off, or batches of 1) the batch interval changes nothing."""
    if settings.get(MAX_BATCH_SIZE) in (None, 1):
        return {**settings, BATCH_INTERVAL_US: 0}
    return dict(settings)


def search_space_size(dims: list[Dimension], start: Settings) -> int:
    """Distinct candidates in the grid (what a brute force measures)."""
    return len(grid(dims, start, canonical))


def apply_settings(api: Any, settings: Settings) -> Any:
    """A copy of `api` with a candidate's settings."""
    candidate = copy.deepcopy(api)
    candidate.instances = settings[INSTANCES]
    if settings[MAX_BATCH_SIZE] is None:
        candidate.batching.predictor_batching = False
    else:
        candidate.batching.predictor_batching = True
        candidate.batching.max_batch_size = settings[MAX_BATCH_SIZE]
        candidate.batching.max_queue_delay_us = settings[BATCH_INTERVAL_US]
    return candidate


def select_api(source: str, api_name: str | None, gpus: list[int] | str | None, kind: str | None = None) -> Any:
    apis = load_apis(source)
    if api_name is not None:
        apis = [api for api in apis if api.name == api_name]
        if not apis:
            raise TuneError(f"{source} has no API named {api_name!r}")
    elif len(apis) > 1:
        raise TuneError(f"{source} has {len(apis)} APIs ({', '.join(a.name for a in apis)}): choose one with --api")
    api = apis[0]
    if api.batch:
        raise TuneError(f"{api.name} is a BatchAPI: tune measures realtime APIs (a job's pace is its `workers`)")
    if gpus is not None or kind is not None:
        apply_instance_settings(api, kind=kind, gpus=gpus, where="--kind/--gpus")
    return api


class Progress:
    """A bar on stderr against the time limit: the candidate being measured and its concurrency."""

    def __init__(self, total_s: float, enabled: bool | None = None, stream: Any = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total_s, self.began = total_s, time.monotonic()
        self.candidate = 0

    def show(self, text: str, final: bool = False) -> None:
        elapsed = time.monotonic() - self.began
        done = min(1.0, elapsed / self.total_s) if self.total_s else 1.0
        bar = "#" * int(done * 20) + "-" * (20 - int(done * 20))
        line = f"[{bar}] {elapsed / 60:4.1f}/{self.total_s / 60:.1f} min  #{self.candidate} {text}"
        if self.enabled:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()


def describe_settings(settings: Settings) -> str:
    parts = [f"instances={settings[INSTANCES]}"]
    if settings.get(MAX_BATCH_SIZE) is None:
        parts.append("batching=off")
    else:
        parts.append(f"max_batch_size={settings[MAX_BATCH_SIZE]}")
        parts.append(f"batch_interval={format_interval(settings[BATCH_INTERVAL_US])}")
    return " ".join(parts)


def format_interval(us: int) -> str:
    return "0" if not us else f"{us / 1000:g}ms"


class CandidateServer:
    """One Triton serving the API; load(settings) swaps in a candidate."""

    def __init__(self, api: Any, workdir: str, options: TuneOptions):
        self.api, self.options = api, options
        self.repository = os.path.join(workdir, "repository")
        build_repository([api], self.repository)
        if api.streaming:
            raise TuneError(f"{api.name} is a streaming API: tune measures request/response APIs only")
        ports = [_free_port() for _ in range(3)]
        server_options = ServerOptions(
            self.repository,
            http_port=ports[0],
            grpc_port=ports[1],
            metrics_port=ports[2],
            admin_token=secrets.token_urlsafe(24),
        )
        self.server = LocalTritonServer(server_options, on_output=lambda line: None, on_event=lambda line: None)
        self.http = f"{server_options.host}:{server_options.http_port}"
        self.loads = 0
        self.fresh = False  # a candidate was just loaded: its first level warms up longer

    def start(self) -> None:
        self.server.start()
        self.server.wait_ready(timeout=self.options.ready_timeout_s)
        metadata = model_metadata(self.http, self.api.name)
        self.body = Workload(metadata, self.options.data, self.options.content_type).http_body()

    def load(self, settings: Settings) -> None:
        candidate = apply_settings(self.api, settings)
        # The runtime reads whether the predictor takes lists from its settings file at load.
        write_api_settings(os.path.join(self.repository, self.api.name, VERSION_DIR), api_settings(candidate))
        config = model_config_dict(candidate)
        self.loads += 1
        config["parameters"] = {RELOAD_PARAMETER: {"stringValue": f"tune-{self.loads}"}}
        assert self.server.admin is not None
        self.server.admin.load(self.api.name, config, timeout=self.options.ready_timeout_s)
        self.fresh = True

    def run_level(self, concurrency: int) -> loadgen.LoadResult:
        url = f"http://{self.http}/v2/models/{self.api.name}/infer"
        warmup_s = self.options.warmup_s
        if self.fresh:
            # Just loaded: a model's first calls are slow (a torch model's first forward passes were
            # 10x slower, measured on MiniLM); the first level is the one a search's sweep starts at.
            warmup_s, self.fresh = max(warmup_s, self.options.level_s), False
        return asyncio.run(loadgen.run_http(url, self.body, concurrency, self.options.level_s, warmup_s=warmup_s))

    def stop(self) -> None:
        self.server.stop()


def tune(
    source: str,
    options: TuneOptions,
    api_name: str | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TuneReport:
    """Search the API's settings on a live server; returns every measurement and the choice."""
    began = clock()
    api = select_api(source, api_name, options.gpus, options.kind)
    dims, start = dimensions_for(api, options)
    total_s = options.max_minutes * 60
    progress = progress or Progress(total_s)
    workdir = tempfile.mkdtemp(prefix="tritonize-tune-")
    try:
        server = CandidateServer(api, workdir, options)
        progress.show("starting Triton...")
        try:
            server.start()

            def measure(settings: Settings, start_concurrency: int | None = None) -> Measurement:
                t0 = clock()
                progress.candidate += 1
                label = describe_settings(settings)
                progress.show(f"{label}: loading")
                try:
                    server.load(settings)
                except (AdminError, OSError) as exc:
                    progress.show(f"{label}: failed to load", final=True)
                    return Measurement(settings, [], clock() - t0, error=f"failed to load: {exc}")

                def run_level(concurrency: int) -> loadgen.LoadResult:
                    progress.show(f"{label}: concurrency {concurrency}")
                    return server.run_level(concurrency)

                levels = sweep(run_level, options.budget, options.max_concurrency, start=start_concurrency)
                measurement = Measurement(settings, levels, clock() - t0)
                best = measurement.best_within(options.budget)
                summary = (
                    f"{best.throughput:.0f} req/s at concurrency {best.concurrency} "
                    f"({options.budget.metric} {options.budget.latency(best):.1f} ms)"
                    if best
                    else f"nothing within {options.budget}"
                )
                progress.show(f"{label}: {summary}", final=True)
                return measurement

            if options.exhaustive:
                result = brute_force(dims, start, measure, options.budget, canonical=canonical)
            else:
                result = quick_search(
                    dims,
                    start,
                    measure,
                    options.budget,
                    canonical=canonical,
                    max_candidates=options.max_candidates,
                    max_seconds=max(0.0, total_s - (clock() - began)),
                    clock=clock,
                )
        finally:
            server.stop()
    except ServeError as exc:
        raise TuneError(f"cannot serve {api.name} to tune it:\n{exc}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return TuneReport(source, api, start, result, search_space_size(dims, start))
