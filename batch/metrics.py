"""Job progress as Prometheus text (GET /_tritonize/metrics on the Cortex endpoint)."""

BATCHES = "tritonize_batch_job_batches"
RUNNING = "tritonize_batch_job_running"


def _label(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(statuses):
    """statuses: JobManager.status() dicts -> the exposition text of both families."""
    lines = [
        f"# HELP {BATCHES} Batches of a batch job by state.",
        f"# TYPE {BATCHES} gauge",
    ]
    running = [f"# HELP {RUNNING} 1 while the batch job runs.", f"# TYPE {RUNNING} gauge"]
    for job in statuses:
        labels = f'api="{_label(job["api_name"])}",job_id="{_label(job["job_id"])}"'
        metrics = job["batch_metrics"]
        counts = {
            "succeeded": metrics["succeeded"],
            "failed": job.get("failed_attempts", 0),
            "dead_lettered": metrics["failed"],
            "queued": job["batches_in_queue"],
        }
        for state, value in counts.items():
            lines.append(f'{BATCHES}{{{labels},state="{state}"}} {value}')
        running.append(f"{RUNNING}{{{labels}}} {1 if job['status'] == 'status_running' else 0}")
    return "\n".join(lines + running) + "\n"
