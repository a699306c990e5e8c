"""What `tritonize tune` shows and writes: the table of every measured point, a CSV, the plot,
and the chosen settings as spec lines (or written into the spec with --write)."""

from __future__ import annotations

import csv
import os
import tempfile
from typing import Any

import yaml

from tritonize.adapter.build import SPEC_SUFFIXES
from tritonize.errors import SpecError
from tritonize.tune.runner import (
    BATCH_INTERVAL_US,
    INSTANCES,
    MAX_BATCH_SIZE,
    TuneReport,
    describe_settings,
    format_interval,
)
from tritonize.tune.search import mean_within, runs, settings_key

COLUMNS = ["candidate", INSTANCES, MAX_BATCH_SIZE, "batch_interval", "concurrency", "req_s", "p50_ms", "p90_ms",
           "p99_ms", "errors", "in_budget", "chosen"]  # fmt: skip


def point_rows(report: TuneReport) -> list[dict[str, Any]]:
    """One row per measured (candidate, concurrency)."""
    budget, chosen = report.result.budget, report.result.best
    chosen_level = chosen.best_within(budget) if chosen else None
    rows = []
    for number, m in enumerate(report.result.measured, 1):
        batch = m.settings.get(MAX_BATCH_SIZE)
        common = {
            "candidate": number,
            INSTANCES: m.settings[INSTANCES],
            MAX_BATCH_SIZE: "off" if batch is None else batch,
            "batch_interval": "-" if batch is None else format_interval(m.settings[BATCH_INTERVAL_US]),
        }
        if not m.levels:
            rows.append({**common, "concurrency": "-", "errors": m.error or "not measured", "in_budget": "no"})
        for level in m.levels:
            rows.append(
                {
                    **common,
                    "concurrency": level.concurrency,
                    "req_s": round(level.throughput, 1),
                    "p50_ms": round(level.p50_ms, 2),
                    "p90_ms": round(level.p90_ms, 2),
                    "p99_ms": round(level.p99_ms, 2),
                    "errors": level.errors,
                    "in_budget": "yes" if budget.keeps(level) else "no",
                    "chosen": "*" if level is chosen_level else "",
                }
            )
    return rows


def format_table(report: TuneReport) -> str:
    rows = point_rows(report)
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in COLUMNS} if rows else {}
    lines = ["  ".join(c.rjust(widths.get(c, len(c))) for c in COLUMNS)]
    lines += ["  ".join(str(r.get(c, "")).rjust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def write_csv(report: TuneReport, path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(point_rows(report))


def write_plot(report: TuneReport, path: str) -> bool:
    """Throughput against latency for each candidate, the budget line, the choice marked.
    False if matplotlib is not installed (pip install 'tritonize[tune]')."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    budget, chosen = report.result.budget, report.result.best
    fig, ax = plt.subplots(figsize=(8, 5))
    for m in report.result.measured:
        if not m.levels:
            continue
        ordered = sorted(m.levels, key=lambda level: level.concurrency)  # a sweep may go down from its start
        xs = [budget.latency(level) for level in ordered]
        ys = [level.throughput for level in ordered]
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1, alpha=0.8, label=describe_settings(m.settings))
    ax.axvline(budget.ms, color="red", linestyle="--", label=f"budget: {budget}")
    # Far over the budget is off the plot: one queued-up level would squeeze everything near the budget.
    latencies = [budget.latency(level) for m in report.result.measured for level in m.levels]
    if latencies and max(latencies) > 4 * budget.ms:
        ax.set_xlim(0, 4 * budget.ms)
        ax.set_xlabel(f"{budget.metric} latency (ms; points over {4 * budget.ms:g} ms are off the plot)")
    if chosen is not None:
        level = chosen.best_within(budget)
        assert level is not None
        ax.plot([budget.latency(level)], [level.throughput], marker="*", color="black", markersize=16,
                linestyle="none", label=f"chosen: {describe_settings(chosen.settings)}")  # fmt: skip
    if not ax.get_xlabel():
        ax.set_xlabel(f"{budget.metric} latency (ms)")
    ax.set_ylabel("throughput (req/s)")
    ax.set_title(f"tritonize tune: {report.api.name}")
    ax.grid(True, alpha=0.3)
    if len(report.result.measured) <= 16:
        ax.legend(fontsize=7, loc="best")
    else:  # too many candidates to name each: the budget and the choice only
        handles, labels = ax.get_legend_handles_labels()
        keep = [(h, label) for h, label in zip(handles, labels) if label.startswith(("budget:", "chosen:"))]
        ax.legend([h for h, _ in keep], [label for _, label in keep], fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def summary(report: TuneReport) -> list[str]:
    """The choice and what it measured, or why there is none."""
    result, budget = report.result, report.result.budget
    lines = [
        f"Measured {len(result.measured)} of {report.search_space} candidates in {result.seconds / 60:.1f} min; "
        f"stopped: {result.stopped}."
    ]
    if result.best is None:
        closest = result.closest
        lines.append(f"No candidate kept the budget ({budget}).")
        if closest is not None and closest.levels:
            lines.append(
                f"The lowest {budget.metric} measured: {closest.lowest_latency(budget):.1f} ms "
                f"({describe_settings(closest.settings)}); raise the budget or make the predictor faster."
            )
        return lines
    level = result.best.best_within(budget)
    assert level is not None
    lines.append(
        f"Chosen: {describe_settings(result.best.settings)}: {level.throughput:.1f} req/s at concurrency "
        f"{level.concurrency}, p50 {level.p50_ms:.1f} ms, p99 {level.p99_ms:.1f} ms (budget: {budget})."
    )
    chosen_runs = runs(result.measured)[settings_key(result.best.settings)]
    if len(chosen_runs) > 1:
        each = [f"{lv.throughput:.1f}" if (lv := m.best_within(budget)) else "out of budget" for m in chosen_runs]
        lines.append(
            f"Measured {len(chosen_runs)} times: {', '.join(each)} req/s (mean {mean_within(chosen_runs, budget):.1f})."
        )
    grouped = runs(result.measured)
    start_runs = grouped.get(settings_key(_canonical_start(report)), [])
    start_rps = mean_within(start_runs, budget) if start_runs else 0.0
    if start_rps and settings_key(start_runs[0].settings) != settings_key(result.best.settings):
        lines.append(
            f"The settings it started from ({describe_settings(start_runs[0].settings)}): {start_rps:.1f} req/s"
            f"{' (mean of its runs)' if len(start_runs) > 1 else ''} "
            f"(the choice: {mean_within(chosen_runs, budget) / start_rps:.2f}x that)."
        )
    return lines


def _canonical_start(report: TuneReport) -> dict[str, Any]:
    from tritonize.tune.runner import canonical

    return canonical(report.start)


def is_spec(source: str) -> bool:
    return source.endswith(SPEC_SUFFIXES)


def spec_lines(report: TuneReport) -> list[str]:
    """The chosen settings as the lines to put in the spec (or the build flags for a predictor file)."""
    best = report.result.best
    if best is None:
        return []
    settings = best.settings
    batch = settings.get(MAX_BATCH_SIZE)
    if not is_spec(report.source):
        flags = [f"--instances {settings[INSTANCES]}"]
        if batch is not None:
            flags.append(f"--max-batch-size {batch}")
            if settings[BATCH_INTERVAL_US]:
                flags.append(f"--batch-interval {format_interval(settings[BATCH_INTERVAL_US])}")
        return [f"tritonize build {report.source} {' '.join(flags)}"]
    lines = [f"- name: {report.api.name}", "  predictor:", f"    processes_per_replica: {settings[INSTANCES]}"]
    if batch is not None:
        lines += ["    server_side_batching:", f"      max_batch_size: {batch}"]
        if settings[BATCH_INTERVAL_US]:
            lines.append(f"      batch_interval: {format_interval(settings[BATCH_INTERVAL_US])}")
    return lines


def write_spec(report: TuneReport) -> str:
    """Write the chosen settings into the spec file (atomically); returns what was changed.
    The file is rewritten by a YAML dumper: comments and quoting are not kept."""
    best = report.result.best
    if best is None:
        raise SpecError("nothing to write: no candidate kept the budget")
    if not is_spec(report.source):
        raise SpecError(f"--write needs a spec file (cortex.yaml); {report.source} is a predictor file")
    with open(report.source, encoding="utf-8") as f:
        document = yaml.safe_load(f)
    entries = document if isinstance(document, list) else [document]
    entry = next((e for e in entries if isinstance(e, dict) and e.get("name") == report.api.name), None)
    if entry is None:
        raise SpecError(f"{report.source}: no API named {report.api.name!r}")
    settings = best.settings
    predictor = entry.setdefault("predictor", {})
    tritonize_section = entry.get("tritonize") or {}
    if "instances" in tritonize_section:  # it wins over processes_per_replica (adapter/instances.py)
        tritonize_section["instances"] = settings[INSTANCES]
    else:
        predictor["processes_per_replica"] = settings[INSTANCES]
    batch = settings.get(MAX_BATCH_SIZE)
    if batch is None:
        predictor.pop("server_side_batching", None)
    else:
        section = predictor.setdefault("server_side_batching", {})
        section["max_batch_size"] = batch
        if settings[BATCH_INTERVAL_US]:
            section["batch_interval"] = format_interval(settings[BATCH_INTERVAL_US])
        else:
            section.pop("batch_interval", None)
    folder = os.path.dirname(os.path.abspath(report.source))
    fd, tmp = tempfile.mkstemp(prefix=".tune-", suffix=".yaml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(document, f, sort_keys=False)
        os.replace(tmp, report.source)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return describe_settings(settings)
