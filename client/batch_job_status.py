"""`tritonize status`: the jobs of each BatchAPI (the running or pending ones, else the latest), read from
the Cortex endpoint: its job metrics name the BatchAPIs that have jobs, its job list gives each job's state.

Behind a load balancer each read is one replica's jobs; jobs live on the replica that owns the job store.
"""

from tritonize.batch.metrics import BATCHES as JOB_BATCHES_METRIC
from tritonize.batch.metrics import RUNNING as JOB_RUNNING_METRIC
from tritonize.client.jobs import IN_PROGRESS_STATUSES, JobApi, progress_of, status_message
from tritonize.errors import TritonizeError
from tritonize.health.prometheus import parse_metrics
from tritonize.host import local_http

# The Cortex endpoint's job progress (Prometheus text: batch/metrics.py).
JOB_METRICS_PATH = "/_tritonize/metrics"


def batch_apis_with_jobs(cortex_url, timeout=5):
    """The BatchAPIs the endpoint has jobs for; [] when it is not running or has none."""
    jobs = JobApi(cortex_url, timeout_s=timeout)
    try:
        with local_http.urlopen(jobs.base + JOB_METRICS_PATH, timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return []
    names = {
        labels.get("api", "")
        for name, labels, _ in parse_metrics(text)
        if name in (JOB_BATCHES_METRIC, JOB_RUNNING_METRIC)
    }
    return sorted(name for name in names if name)


def collect_batch_jobs(cortex_url, api=None, timeout=5):
    """[(api, job_status)]: per BatchAPI its jobs in progress (running, pending, enqueuing), else its latest."""
    jobs = JobApi(cortex_url, timeout_s=timeout)
    result = []
    for name in batch_apis_with_jobs(cortex_url, timeout):
        if api not in (None, name):
            continue
        try:
            listed = jobs.list(name)
        except TritonizeError:  # gone between the two reads: nothing to show for it
            continue
        shown = [job for job in listed if job.get("status") in IN_PROGRESS_STATUSES] or listed[:1]
        result.extend((name, job) for job in shown)
    return result


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
