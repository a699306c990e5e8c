"""`tritonize status`: which APIs are BatchAPIs, and the jobs of each (the running or pending ones, else the
latest), read from the Cortex endpoint: `GET /<api>` answers a BatchAPI's job list (a RealtimeAPI's answer
has no "jobs"), which also tells a BatchAPI that no job has loaded (Triton's index shows it unloaded).

Behind a load balancer each read is one replica's jobs; jobs live on the replica that owns the job store.
"""

from tritonize.adapter.runtime.constants import BATCH_API
from tritonize.client.jobs import IN_PROGRESS_STATUSES, JobApi, progress_of, status_message
from tritonize.client.status import collect
from tritonize.errors import ServerUnreachable, TritonizeError


def job_lists(cortex_url, names, timeout=5):
    """{api: its jobs, newest first} for the names that are BatchAPIs; {} when the endpoint does not answer."""
    jobs = JobApi(cortex_url, timeout_s=timeout)
    found = {}
    for name in names:
        try:
            answer = jobs.json(name)
        except ServerUnreachable:  # no endpoint there: ask no more
            break
        except TritonizeError:  # no such API there
            continue
        if isinstance(answer, dict) and isinstance(answer.get("jobs"), list):
            found[name] = answer["jobs"]
    return found


def collect_with_jobs(url, metrics_url, cortex_url, token=None, api=None):
    """-> ([ApiStatus] with BatchAPIs told apart, [(api, job_status)] to show below them)."""
    statuses = collect(url, metrics_url, token=token, api=api)
    # A loaded BatchAPI says so by its config; an unloaded model may be an idle BatchAPI: ask the endpoint.
    candidates = [s.name for s in statuses if s.kind == BATCH_API or s.state != "ready"]
    lists = job_lists(cortex_url, candidates)
    if any(s.name in lists and s.kind != BATCH_API for s in statuses):
        statuses = collect(url, metrics_url, token=token, api=api, batch_apis=tuple(lists))
    rows = []
    for name, listed in sorted(lists.items()):
        shown = [job for job in listed if job.get("status") in IN_PROGRESS_STATUSES] or listed[:1]
        rows.extend((name, job) for job in shown)
    return statuses, rows


def format_batch_jobs(rows):
    """A table: one line per job (status, succeeded/failed/queued of the total batches)."""
    if not rows:
        return ""
    table = [("BATCH API", "JOB ID", "STATUS", "SUCCEEDED", "FAILED", "QUEUED", "TOTAL")]
    for api, job in rows:
        progress = progress_of(job)
        table.append(
            (
                api,
                str(job.get("job_id", "-")),
                status_message(str(job.get("status", ""))),
                str(progress.succeeded),
                str(progress.failed),
                str(progress.queued),
                str(progress.total or "-"),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)
