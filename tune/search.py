"""`tritonize tune`'s search: which instances x max_batch_size x batch_interval serve the most
requests per second within a latency budget.

Pure logic, no server: `quick_search` gets a `measure(settings) -> Measurement` function (the real
one serves the candidate and loads it, tune/runner.py; tests pass a fake landscape).

The search is coordinate descent from the spec's own settings: for one setting at a time it measures
both neighbours (the next value up and down that setting's geometric list), moves to the better one
if it improves the throughput within the budget by more than `min_gain`, and keeps stepping that way
while it improves; then the next setting. When a whole pass over the settings moves nowhere
(model_analyzer's quick mode stops there) it tries the diagonal moves on the ridges around the best
point (two settings changed at once where each alone measured nearly as good: fewer instances and a
longer interval together can win where each alone loses), and climbs on from a better one. Last, the
top candidates, when close, are measured again and the choice is the finalist with the higher mean
(one lucky run must not win).
Equivalent settings share a measurement (see `canonical`). A candidate's concurrency sweep starts at
the concurrency where the best candidate so far peaked (`sweep`'s `start`), not at 1.
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
# A diagonal move is tried where both single steps measured at least this share of the best's throughput.
RIDGE = 0.85
# At most this many diagonal moves around one best point (the most promising first).
MAX_DIAGONALS = 2
# The top candidates measured again before choosing, when the runner-up is within CONFIRM_MARGIN of the best.
CONFIRM_TOP = 2
CONFIRM_MARGIN = 0.10

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
    # Stepping this one up is also tried with `couples_with` stepped up, however the single steps
    # measured (a larger batch needs time to fill: on the busy machine batches of 16 with no interval
    # broke the budget, with 2 ms they served twice as much).
    couples_with: str | None = None

    def with_start(self, start: Any) -> Dimension:
        """The same dimension, `start` added among its values (the spec's own setting is always a candidate)."""
        values = sorted(set(self.values) | {start}, key=_order_key)
        return Dimension(self.name, values, self.probe_first, self.couples_with)


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
    measure: Callable[[Settings, int | None], Measurement],
    budget: Budget,
    canonical: Callable[[Settings], Settings] = lambda settings: settings,
    min_gain: float = MIN_GAIN,
    max_candidates: int | None = None,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_diagonals: int = MAX_DIAGONALS,
    confirm_top: int = CONFIRM_TOP,
) -> SearchResult:
    """Coordinate descent over `dimensions` from `start`, diagonal moves on ridges, the top candidates
    measured again (see the module's docstring).

    measure(settings, start_concurrency): measure one candidate; start_concurrency is where the best
    candidate so far peaked (None for the first: sweep from 1).
    canonical(settings): the settings with what does not matter dropped (the batch interval when
    nothing is batched), so that equivalent candidates are measured once.
    max_candidates / max_seconds: stop early (the best so far is still chosen); a measurement again
    counts as a candidate.
    """
    dimensions = [d.with_start(start[d.name]) for d in dimensions]
    cache: dict[tuple, Measurement] = {}
    measured: list[Measurement] = []
    began = clock()
    state: dict[str, Measurement | None] = {"best": None}  # the best measured so far: its peak starts sweeps

    def key(settings: Settings) -> tuple:
        return settings_key(canonical(settings))

    def hint() -> int | None:
        best = state["best"]
        level = best.best_within(budget) if best is not None else None
        return level.concurrency if level is not None else None

    def run(settings: Settings, start_concurrency: int | None) -> Measurement:
        if max_candidates is not None and len(measured) >= max_candidates:
            raise _Limit(f"the candidate limit ({max_candidates}) was reached")
        if max_seconds is not None and clock() - began >= max_seconds:
            raise _Limit(f"the time limit ({max_seconds / 60:.3g} min) was reached")
        result = measure(dict(canonical(settings)), start_concurrency)
        measured.append(result)
        if state["best"] is None or score(result, budget) > score(state["best"], budget):
            state["best"] = result
        return result

    def get(settings: Settings) -> Measurement:
        k = key(settings)
        if k not in cache:
            cache[k] = run(settings, hint())
        return cache[k]

    def near(m: Measurement, reference: Measurement) -> bool:
        """Measured nearly as good as `reference` (within the budget): a ridge a diagonal may climb."""
        level, ref = m.best_within(budget), reference.best_within(budget)
        return level is not None and ref is not None and level.throughput >= RIDGE * ref.throughput

    def diagonals(current: Settings, current_m: Measurement) -> list[Settings]:
        """Two settings stepped at once, where each step alone measured near the current best; the
        most promising (the better of the two single steps highest) first."""
        found: list[tuple[float, Settings]] = []
        for i, a in enumerate(dimensions):
            for b in dimensions[i + 1 :]:
                for da in (1, -1):
                    for db in (1, -1):
                        step_a, step_b = _step(current, a, da), _step(current, b, db)
                        if step_a is None or step_b is None:
                            continue
                        both = {**step_a, b.name: step_b[b.name]}
                        if len({key(current), key(step_a), key(step_b), key(both)}) < 4:
                            continue  # not a diagonal once equivalent settings are merged
                        m_a, m_b = cache.get(key(step_a)), cache.get(key(step_b))
                        if (da, db) == (1, 1) and a.couples_with == b.name:
                            found.append((math.inf, both))  # coupled: tried first, whatever the single steps
                            continue
                        if m_a is None or m_b is None or not (near(m_a, current_m) and near(m_b, current_m)):
                            continue
                        found.append((min(score(m_a, budget)[1], score(m_b, budget)[1]), both))
        found.sort(key=lambda t: -t[0])
        return [s for _, s in found[:max_diagonals]]

    current = dict(start)
    stopped = "no neighbour of the best candidate improves on it"
    finalists: list[tuple] | None = None  # the top candidates measured again: the choice is one of them
    try:
        current_m = get(current)
        moved = True
        while moved:
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
            # No single step improves: try the diagonals on the ridges, climb on from a better one.
            moved = False
            for diagonal in diagonals(current, current_m):
                diagonal_m = get(diagonal)
                if better(diagonal_m, current_m, budget, min_gain):
                    current, current_m, moved = diagonal, diagonal_m, True
                    break
        # Beat the noise: measure the top candidates again when they are close, choose by the mean.
        ranked = sorted(runs(measured).values(), key=lambda g: -mean_within(g, budget))
        top = [g for g in ranked[:confirm_top] if g[0].best_within(budget) is not None]
        if len(top) >= 2 and mean_within(top[1], budget) >= (1 - CONFIRM_MARGIN) * mean_within(top[0], budget):
            for group in top:
                level = group[0].best_within(budget)
                run(group[0].settings, level.concurrency if level else None)
            finalists = [settings_key(group[0].settings) for group in top]
            stopped += f"; the top {len(top)} were close and measured again"
    except _Limit as limit:
        stopped = str(limit)
    return SearchResult(budget, measured, stopped, choose(measured, budget, among=finalists))


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
    measure: Callable[[Settings, int | None], Measurement],
    budget: Budget,
    canonical: Callable[[Settings], Settings] = lambda settings: settings,
) -> SearchResult:
    """Measure every candidate, each with a whole sweep from concurrency 1 (`tritonize tune --exhaustive`;
    what the quick search is checked against)."""
    measured = [measure(settings, None) for settings in grid(dimensions, start, canonical)]
    return SearchResult(budget, measured, "every candidate was measured", choose(measured, budget))


def settings_key(settings: Settings) -> tuple:
    return tuple(sorted(settings.items()))


def runs(measured: Sequence[Measurement]) -> dict[tuple, list[Measurement]]:
    """The measurements of each candidate (more than one where the search measured it again), in order."""
    grouped: dict[tuple, list[Measurement]] = {}
    for m in measured:
        grouped.setdefault(settings_key(m.settings), []).append(m)
    return grouped


def mean_within(candidate_runs: Sequence[Measurement], budget: Budget) -> float:
    """A candidate's throughput within the budget over its runs (a run that kept no level counts 0)."""
    values = [level.throughput if (level := m.best_within(budget)) else 0.0 for m in candidate_runs]
    return sum(values) / len(values)


def choose(measured: Sequence[Measurement], budget: Budget, among: Sequence[tuple] | None = None) -> Measurement | None:
    """The candidate with the highest throughput within the budget (the mean of its runs, where it was
    measured more than once); None if none kept it. Never one that breaks the budget: a level counts
    only if its latency kept it. Of a candidate's runs, the one nearest its mean (the lower on a tie).

    among: the settings keys of the finalists measured again: the choice is one of them where one kept
    the budget (a candidate measured once, below them, is not compared with their means)."""
    kept = [group for group in runs(measured).values() if any(m.best_within(budget) for m in group)]
    finalists = [group for group in kept if among is not None and settings_key(group[0].settings) in among]
    kept = finalists or kept
    if not kept:
        return None
    group = max(kept, key=lambda g: mean_within(g, budget))
    mean = mean_within(group, budget)
    kept_runs = [(level.throughput, m) for m in group if (level := m.best_within(budget)) is not None]
    return min(kept_runs, key=lambda t: (abs(t[0] - mean), t[0]))[1]


def sweep(
    run_level: Callable[[int], LoadResult],
    budget: Budget,
    max_concurrency: int = 64,
    saturation_gain: float = SATURATION_GAIN,
    patience: int = SWEEP_PATIENCE,
    start: int | None = None,
) -> list[LoadResult]:
    """Measure at concurrency 1, 2, 4, ... until `patience` levels in a row either broke the budget
    or gained less than saturation_gain over the best level so far (the candidate is saturated, or
    a higher concurrency only queues longer), until a level has errors, or up to max_concurrency.
    More than one miss: a single short level is easily thrown by a hiccup of a busy machine.

    start: begin there instead (where a similar candidate peaked): up by doubling while a level
    gains, or, if the first level broke the budget twice, down by halving to the first that keeps it.
    A closed loop at a lower concurrency serves less, so the levels below a kept start are not needed.
    """
    if start is not None and start > 1:
        return _sweep_from(run_level, budget, min(start, max_concurrency), max_concurrency, saturation_gain)
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


def _sweep_from(
    run_level: Callable[[int], LoadResult], budget: Budget, start: int, max_concurrency: int, saturation_gain: float
) -> list[LoadResult]:
    level = run_level(start)
    levels = [level]
    if level.errors:
        return levels
    if not budget.keeps(level):  # once more before going down: one hiccup must not halve the candidate
        level = run_level(start)
        levels.append(level)
        if level.errors:
            return levels
    if not budget.keeps(level):
        concurrency = start // 2
        while concurrency >= 1:
            level = run_level(concurrency)
            levels.append(level)
            if level.errors or budget.keeps(level):
                break
            concurrency //= 2
        return levels
    best, concurrency = level.throughput, start * 2
    while concurrency <= max_concurrency:
        level = run_level(concurrency)
        levels.append(level)
        if level.errors or not budget.keeps(level) or level.throughput < best * (1 + saturation_gain):
            break
        best, concurrency = level.throughput, concurrency * 2
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
