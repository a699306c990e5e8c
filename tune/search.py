"""`tritonize tune`'s search: which instances x max_batch_size x batch_interval serve the most
requests per second within a latency budget.

Pure logic, no server: `quick_search` gets a `measure(settings) -> Measurement` function (the real
one serves the candidate and loads it, tune/runner.py; tests pass a fake landscape).

The search is coordinate descent from the spec's own settings: for one setting at a time it measures
both neighbours (the next value up and down that setting's geometric list), moves to the better one
if it improves the throughput within the budget by more than `min_gain`, and keeps stepping that way
while it improves; then the next setting. It stops when a whole pass over the settings moves nowhere
(model_analyzer's quick mode climbs the same way).
Each candidate is measured once (equivalent settings share a measurement, see `canonical`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tritonize.client.loadgen import LoadResult
from tritonize.errors import TritonizeError

# A candidate must beat the current one by this much to be moved to: less is measuring noise.
MIN_GAIN = 0.03
# A concurrency sweep stops once doubling the concurrency gains less than this: the candidate is saturated.
SATURATION_GAIN = 0.05
# ... or once this many levels in a row gained less or broke the budget.
SWEEP_PATIENCE = 2

Settings = dict[str, Any]


class TuneError(TritonizeError):
    """A tune that cannot run (bad budget, streaming API, ...)."""

    exit_code = 2


@dataclass(frozen=True)
class Budget:
    """A latency budget: `metric` ("p50", "p90" or "p99") at most `ms` milliseconds."""

    metric: str
    ms: float

    def latency(self, level: LoadResult) -> float:
        return float(getattr(level, f"{self.metric}_ms"))

    def keeps(self, level: LoadResult) -> bool:
        return level.errors == 0 and level.requests > 0 and self.latency(level) <= self.ms

    def __str__(self) -> str:
        return f"{self.metric} <= {self.ms:g} ms"


@dataclass
class Measurement:
    """One candidate's concurrency sweep."""

    settings: Settings
    levels: list[LoadResult] = field(default_factory=list)
    seconds: float = 0.0  # what measuring it took (load + sweep)
    error: str = ""  # the candidate failed to load or to answer

    def best_within(self, budget: Budget) -> LoadResult | None:
        """The level with the highest throughput that keeps the budget (None: no level does)."""
        kept = [level for level in self.levels if budget.keeps(level)]
        return max(kept, key=lambda level: level.throughput) if kept else None

    def lowest_latency(self, budget: Budget) -> float:
        answered = [budget.latency(level) for level in self.levels if level.requests and not level.errors]
        return min(answered) if answered else math.inf


@dataclass
class Dimension:
    """One setting and its values, in order (neighbours are one step apart)."""

    name: str
    values: list[Any]
    # Also try the first value from anywhere: a regime of its own, not a step on a slope (batches of
    # one never make requests wait for each other; from a plateau of batch sizes 2-64 the climb
    # would not reach it: measured on the sleeping benchmark predictor).
    probe_first: bool = False

    def with_start(self, start: Any) -> Dimension:
        """The same dimension, `start` added among its values (the spec's own setting is always a candidate)."""
        values = sorted(set(self.values) | {start}, key=_order_key)
        return Dimension(self.name, values, self.probe_first)


def _order_key(value: Any) -> tuple[int, float]:
    return (0, 0.0) if value is None else (1, float(value))  # None (off) before every number


@dataclass
class SearchResult:
    budget: Budget
    measured: list[Measurement]  # in the order measured
    stopped: str  # why the search ended
    best: Measurement | None  # the highest throughput within the budget; None: no candidate kept it

    @property
    def seconds(self) -> float:
        return sum(m.seconds for m in self.measured)

    @property
    def closest(self) -> Measurement | None:
        """With no candidate in the budget: the one with the lowest latency."""
        if not self.measured:
            return None
        return min(self.measured, key=lambda m: m.lowest_latency(self.budget))


def score(measurement: Measurement, budget: Budget) -> tuple[int, float]:
    """Higher is better: in the budget by throughput; out of it by (lower) latency."""
    best = measurement.best_within(budget)
    if best is not None:
        return (1, best.throughput)
    return (0, -measurement.lowest_latency(budget))


def better(candidate: Measurement, current: Measurement, budget: Budget, min_gain: float = MIN_GAIN) -> bool:
    """Is `candidate` worth moving to: in the budget where `current` is not, or clearly ahead."""
    (kept_c, value_c), (kept_0, value_0) = score(candidate, budget), score(current, budget)
    if kept_c != kept_0:
        return kept_c > kept_0
    if kept_c:
        return value_c > value_0 * (1 + min_gain)
    if math.isinf(value_0):
        return not math.isinf(value_c)
    return -value_c < -value_0 * (1 - min_gain)


class _Limit(Exception):
    pass


def _step(settings: Settings, dim: Dimension, direction: int) -> Settings | None:
    """`settings` with `dim` one value up (1) or down (-1); None past either end."""
    index = dim.values.index(settings[dim.name]) + direction
    if not 0 <= index < len(dim.values):
        return None
    return {**settings, dim.name: dim.values[index]}


def quick_search(
    dimensions: Sequence[Dimension],
    start: Settings,
    measure: Callable[[Settings], Measurement],
    budget: Budget,
    canonical: Callable[[Settings], Settings] = lambda settings: settings,
    min_gain: float = MIN_GAIN,
    max_candidates: int | None = None,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Coordinate descent over `dimensions` from `start` (see the module's docstring).

    canonical(settings): the settings with what does not matter dropped (the batch interval when
    nothing is batched), so that equivalent candidates are measured once.
    max_candidates / max_seconds: stop early (the best so far is still chosen).
    """
    dimensions = [d.with_start(start[d.name]) for d in dimensions]
    cache: dict[tuple, Measurement] = {}
    measured: list[Measurement] = []
    began = clock()

    def key(settings: Settings) -> tuple:
        return tuple(sorted(canonical(settings).items()))

    def get(settings: Settings) -> Measurement:
        k = key(settings)
        if k not in cache:
            if max_candidates is not None and len(measured) >= max_candidates:
                raise _Limit(f"the candidate limit ({max_candidates}) was reached")
            if max_seconds is not None and clock() - began >= max_seconds:
                raise _Limit(f"the time limit ({max_seconds / 60:.3g} min) was reached")
            result = measure(dict(canonical(settings)))
            cache[k] = result
            measured.append(result)
        return cache[k]

    current = dict(start)
    stopped = "no neighbour of the best candidate improves on it"
    try:
        current_m = get(current)
        moved_in_pass = True
        while moved_in_pass:
            moved_in_pass = False
            for dim in dimensions:
                # Look both ways before stepping: one noisy neighbour must not hide a better side.
                steps = [(d, _step(current, dim, d)) for d in (1, -1)]
                if dim.probe_first and current[dim.name] != dim.values[0]:
                    steps.append((-1, {**current, dim.name: dim.values[0]}))
                tried = [(d, s, get(s)) for d, s in steps if s is not None and key(s) != key(current)]
                ahead = [(d, s, m) for d, s, m in tried if better(m, current_m, budget, min_gain)]
                if not ahead:
                    continue
                direction, current, current_m = max(ahead, key=lambda t: score(t[2], budget))
                moved_in_pass = True
                # Then keep going that way while it improves (the values are geometric: doubling steps).
                while True:
                    step = _step(current, dim, direction)
                    if step is None or key(step) == key(current):
                        break
                    step_m = get(step)
                    if not better(step_m, current_m, budget, min_gain):
                        break
                    current, current_m = step, step_m
    except _Limit as limit:
        stopped = str(limit)
    return SearchResult(budget, measured, stopped, choose(measured, budget))


def grid(
    dimensions: Sequence[Dimension], start: Settings, canonical: Callable[[Settings], Settings] = lambda s: s
) -> list[Settings]:
    """Every distinct candidate of the search space (equivalent settings once), in grid order."""
    points: list[Settings] = [dict(start)]
    for dim in dimensions:
        points = [{**p, dim.name: v} for p in points for v in dim.with_start(start[dim.name]).values]
    seen: dict[tuple, Settings] = {}
    for p in points:
        c = canonical(p)
        seen.setdefault(tuple(sorted(c.items())), c)
    return list(seen.values())


def brute_force(
    dimensions: Sequence[Dimension],
    start: Settings,
    measure: Callable[[Settings], Measurement],
    budget: Budget,
    canonical: Callable[[Settings], Settings] = lambda settings: settings,
) -> SearchResult:
    """Measure every candidate (`tritonize tune --exhaustive`; what the quick search is checked against)."""
    measured = [measure(settings) for settings in grid(dimensions, start, canonical)]
    return SearchResult(budget, measured, "every candidate was measured", choose(measured, budget))


def choose(measured: Sequence[Measurement], budget: Budget) -> Measurement | None:
    """The candidate with the highest throughput within the budget; None if none kept it.
    Never one that breaks the budget: a level counts only if its latency kept it."""
    kept = [m for m in measured if m.best_within(budget) is not None]
    if not kept:
        return None
    return max(kept, key=lambda m: m.best_within(budget).throughput)  # type: ignore[union-attr]


def sweep(
    run_level: Callable[[int], LoadResult],
    budget: Budget,
    max_concurrency: int = 64,
    saturation_gain: float = SATURATION_GAIN,
    patience: int = SWEEP_PATIENCE,
) -> list[LoadResult]:
    """Measure at concurrency 1, 2, 4, ... until `patience` levels in a row either broke the budget
    or gained less than saturation_gain over the best level so far (the candidate is saturated, or
    a higher concurrency only queues longer), until a level has errors, or up to max_concurrency.
    More than one miss: a single short level is easily thrown by a hiccup of a busy machine."""
    levels: list[LoadResult] = []
    best = 0.0
    misses = 0
    concurrency = 1
    while concurrency <= max_concurrency:
        level = run_level(concurrency)
        levels.append(level)
        if level.errors:
            break
        if budget.keeps(level) and level.throughput >= best * (1 + saturation_gain):
            best, misses = level.throughput, 0
        else:
            best = max(best, level.throughput if budget.keeps(level) else 0.0)
            misses += 1
            if misses >= patience:
                break
        concurrency *= 2
    return levels


def parse_budget(p99: str | None, p50: str | None, p90: str | None = None) -> Budget:
    """--p99 50ms / --p50 0.02s (one of them) -> Budget."""
    from tritonize.adapter.spec_values import parse_duration
    from tritonize.errors import SpecError

    given = [(metric, value) for metric, value in (("p99", p99), ("p90", p90), ("p50", p50)) if value is not None]
    if len(given) != 1:
        raise TuneError("give one latency budget: --p99 (e.g. 50ms), --p90 or --p50")
    metric, value = given[0]
    try:
        seconds = parse_duration(value, f"--{metric}")
    except SpecError as exc:
        raise TuneError(str(exc)) from None
    if seconds <= 0:
        raise TuneError(f"--{metric}: the budget must be more than 0, got {value!r}")
    return Budget(metric, seconds * 1000)
