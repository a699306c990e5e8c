"""Batch jobs as people read them: one job like `cortex get <api> <job>`, a job list, a progress line."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from tritonize.client.jobs import is_done, progress_of, status_message


def _parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "-"
    seconds = int(((end or datetime.now(timezone.utc)) - start).total_seconds())
    return (
        f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{max(seconds, 0)}s")
    )


def _time(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def format_job(answer: Mapping[str, Any]) -> str:
    """GET /<api>?jobID=... -> the text `cortex get <api> <job>` printed."""
    job = answer["job_status"]
    start, end = _parse_time(job.get("start_time")), _parse_time(job.get("end_time"))
    metrics = job.get("batch_metrics") or {}
    # Cortex's Go type says average_time_per_batch (its docs said avg_time_per_batch): read both.
    average = metrics.get("average_time_per_batch", metrics.get("avg_time_per_batch"))
    lines = [
        f"job id: {job.get('job_id', '-')}",
        f"status: {status_message(str(job.get('status', '')))}",
        "",
        f"start time: {_time(start)}",
        f"end time: {_time(end)}",
        f"duration: {_duration(start, end)}",
        "",
        "batch stats",
    ]
    row = (
        str(job.get("total_batch_count", "-")),
        str(metrics.get("succeeded", "-")),
        str(metrics.get("failed", "-")),
        str(job.get("failed_attempts", "-")),
        "-" if average is None else f"{float(average) * 1000:.0f}ms",
        str(job.get("batches_in_queue", "-")),
    )
    header = ("total", "succeeded", "failed", "failed attempts", "avg time per batch", "in queue")
    lines += _table([header, row])
    status = str(job.get("status", ""))
    if status == "status_enqueuing":  # Cortex's words
        lines += ["", "still enqueuing, workers have not been allocated for this job yet"]
    elif is_done(job):
        lines += ["", "worker stats are not available because this job is not currently running"]
    else:
        counts = job.get("worker_counts") or {}
        shown = [state for state in ("pending", "initializing", "stalled", "running", "failed", "succeeded")
                 if state in ("running", "succeeded") or counts.get(state)]  # fmt: skip
        lines += ["", "worker stats"]
        lines += _table(
            [("requested", *shown), (str(job.get("workers", "-")), *(str(counts.get(s, 0)) for s in shown))]
        )
    if metrics.get("failed") and job.get("dead_letter"):
        lines.append(f"failed batches (dead letter): {job['dead_letter']}")
    if job.get("message"):
        lines.append(f"message: {job['message']}")
    if answer.get("endpoint"):
        lines += ["", f"job endpoint: {answer['endpoint']}"]
    spec = {k: v for k, v in job.items() if k not in ("status", "batches_in_queue", "batch_metrics", "worker_counts")}
    lines += ["", "job configuration", json.dumps(spec, indent=2, sort_keys=True)]
    return "\n".join(lines)


def format_jobs(jobs: list[Mapping[str, Any]]) -> str:
    """GET /<api> -> `cortex get <batch-api>`'s job table (newest first)."""
    if not jobs:
        return "no submitted batch jobs"
    rows: list[tuple[str, ...]] = [("job id", "status", "progress", "failed", "start time", "duration")]
    for job in jobs:
        progress = progress_of(job)
        start, end = _parse_time(job.get("start_time")), _parse_time(job.get("end_time"))
        rows.append(
            (
                str(job.get("job_id", "-")),
                status_message(str(job.get("status", ""))),
                f"{progress.succeeded}/{progress.total}",
                str(progress.failed),
                _time(start),
                _duration(start, end),
            )
        )
    return "\n".join(_table(rows))


class ProgressLine:
    """`tritonize job submit --wait`'s progress: a bar redrawn in place on a terminal, else one plain line
    each time the numbers change. call(job_status) -> the text to write (maybe ""); `end` after the last."""

    def __init__(self, tty: bool, width: int = 30) -> None:
        self.tty = tty
        self.width = width
        self.started = time.monotonic()
        self._last = ""

    def __call__(self, job_status: Mapping[str, Any]) -> str:
        p = progress_of(job_status)
        elapsed = time.monotonic() - self.started
        done = p.succeeded + p.failed
        rate = f"{done / elapsed:.1f} batches/s" if elapsed > 0 and done else "- batches/s"
        status = status_message(str(job_status.get("status", "")))
        total = str(p.total) if p.total else "?"
        numbers = f"{p.succeeded} done, {p.failed} failed of {total} batches"
        if not self.tty:
            key = f"{status} {numbers}"
            if key == self._last:
                return ""
            self._last = key
            return f"{status}: {numbers}, {elapsed:.0f}s elapsed, {rate}\n"
        filled = int(self.width * done / p.total) if p.total else 0
        bar = "#" * min(filled, self.width) + "-" * (self.width - min(filled, self.width))
        end = "\n" if is_done(job_status) else ""
        return f"\r[{bar}] {numbers}  {elapsed:.0f}s  {rate}  {status}\x1b[K{end}"
