"""`tritonize job submit|status|stop|logs`: batch jobs of a BatchAPI, over Cortex's job API on the
Cortex endpoint (docs/batch.md). Each command parses, calls one function, prints."""

import json
import sys

import click
import yaml

from tritonize.adapter.runtime.constants import DEFAULT_CORTEX_PORT
from tritonize.cli.values import key_values

DEFAULT_CORTEX_URL = f"127.0.0.1:{DEFAULT_CORTEX_PORT}"
# `job submit --wait` for a job that ended other than succeeded (Cortex's statuses: docs/batch.md).
JOB_FAILED_EXIT_CODE = 1


def _cortex_url_option(func):
    return click.option(
        "--cortex-url",
        default=DEFAULT_CORTEX_URL,
        show_default=True,
        envvar="TRITONIZE_CORTEX_URL",
        help="host:port of the Cortex endpoint (default also from $TRITONIZE_CORTEX_URL).",
    )(func)


def _job_api(cortex_url):
    from tritonize.client.jobs import JobApi

    return JobApi(cortex_url)


def _at_file(value, what):
    """'@path' -> the file's text; anything else as it is."""
    if not value.startswith("@"):
        return value
    try:
        with open(value[1:], encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise click.BadParameter(f"{value[1:]}: {exc.strerror}", param_hint=what) from None


def _json_value(value, what):
    try:
        return json.loads(_at_file(value, what))
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=what) from None


def _config(items):
    """--config k=v (YAML scalars, as `build --config`) and --config @file (YAML or JSON mapping), merged in order."""
    config = {}
    for item in items:
        if item.startswith("@"):
            loaded = yaml.safe_load(_at_file(item, "--config"))
            if not isinstance(loaded, dict):
                raise click.BadParameter(f"{item[1:]}: expected a mapping", param_hint="--config")
            config.update(loaded)
        else:
            config.update(key_values([item], "--config", parse_values=True))
    return config


@click.group("job")
def job():
    """Batch jobs of a BatchAPI: submit, status, stop, logs (Cortex's job API, docs/batch.md)."""


@job.command("submit")
@click.argument("api")
@click.option("--items", metavar="JSON|@FILE", help="item_list: a JSON list of items (or @file.json).")
@click.option("--file-path-lister", "file_paths", multiple=True, metavar="PATH",
              help="file_path_lister: s3://bucket/prefix, a local folder or file:// URL (repeatable).")  # fmt: skip
@click.option("--delimited-files", "delimited", multiple=True, metavar="PATH",
              help="delimited_files: JSON-lines files or folders (s3://, local, file://; repeatable).")  # fmt: skip
@click.option("--include", "includes", multiple=True, metavar="GLOB", help="Only files matching (repeatable).")
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help="Not files matching (repeatable).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Items (or files) per predict() call.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker instances for the job (default 1).")
@click.option("--config", "config_items", multiple=True, metavar="KEY=VALUE|@FILE",
              help="Job config, merged over the API's predictor.config (repeatable).")  # fmt: skip
@click.option("--timeout", type=click.IntRange(min=1), help="Seconds from submission before the job is ended.")
@click.option("--dead-letter", metavar="PATH", help="Folder or s3://bucket/prefix for batches that keep failing.")
@click.option("--max-receive-count", type=click.IntRange(min=1), help="Attempts per batch before dead letter.")
@click.option("--submission", metavar="@FILE|JSON", help="A whole Cortex job submission; options above override it.")
@click.option("--dry-run", is_flag=True, help="List the batches/files the job would run; run nothing.")
@click.option("--wait", is_flag=True, help="Show progress (stderr) until the job ends; exit 1 unless it succeeded.")
@_cortex_url_option
def submit_command(api, items, file_paths, delimited, includes, excludes, batch_size, workers, config_items,
                   timeout, dead_letter, max_receive_count, submission, dry_run, wait, cortex_url):  # fmt: skip
    """Submit a batch job to API; prints the job's spec (its job_id)."""
    from tritonize.client.jobs import build_submission

    item_list = _json_value(items, "--items") if items is not None else None
    if items is not None and not isinstance(item_list, list):
        raise click.BadParameter("expected a JSON list", param_hint="--items")
    try:
        body = build_submission(
            workers=workers,
            items=item_list,
            file_path_lister=list(file_paths) or None,
            delimited_files=list(delimited) or None,
            batch_size=batch_size,
            includes=list(includes),
            excludes=list(excludes),
            config=_config(config_items),
            timeout=timeout,
            dead_letter=dead_letter,
            max_receive_count=max_receive_count,
            base=_json_value(submission, "--submission") if submission else None,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    jobs = _job_api(cortex_url)
    answer = jobs.submit(api, body, dry_run=dry_run)
    if dry_run:
        click.echo(answer, nl=not answer.endswith("\n"))
        return
    click.echo(json.dumps(answer, indent=2))
    if wait:
        _wait(jobs, api, answer["job_id"])


def _wait(jobs, api, job_id):
    from tritonize.client.job_view import ProgressLine
    from tritonize.client.jobs import SUCCEEDED, status_message

    line = ProgressLine(tty=sys.stderr.isatty())

    def show(job_status):
        text = line(job_status)
        if text:
            click.echo(text, nl=False, err=True)

    try:
        final = jobs.wait(api, job_id, progress=show)
    except KeyboardInterrupt:  # the job goes on without us
        click.echo(f"\nstopped waiting; the job goes on: tritonize job status {api} {job_id}", err=True)
        sys.exit(130)
    # stderr, like the progress: stdout stays the job's JSON (scripts parse it)
    click.echo(f"job {job_id}: {status_message(final['status'])}", err=True)
    if final["status"] != SUCCEEDED:
        click.echo(f"see: tritonize job logs {api} {job_id}", err=True)
        sys.exit(JOB_FAILED_EXIT_CODE)


@job.command("status")
@click.argument("api")
@click.argument("job_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's JSON answer.")
@_cortex_url_option
def status_command(api, job_id, as_json, cortex_url):
    """One job of API (like `cortex get API JOB_ID`), or API's jobs, newest first."""
    from tritonize.client.job_view import format_job, format_jobs

    jobs = _job_api(cortex_url)
    if job_id:
        answer = jobs.get(api, job_id)
        click.echo(json.dumps(answer, indent=2) if as_json else format_job(answer))
    else:
        listed = jobs.list(api)
        click.echo(json.dumps({"jobs": listed}, indent=2) if as_json else format_jobs(listed))


@job.command("stop")
@click.argument("api")
@click.argument("job_id")
@_cortex_url_option
def stop_command(api, job_id, cortex_url):
    """Stop JOB_ID of API (batches not yet run are dropped)."""
    click.echo(_job_api(cortex_url).stop(api, job_id).get("message", ""))


@job.command("logs")
@click.argument("api")
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
@_cortex_url_option
def logs_command(api, job_id, follow, cortex_url):
    """The log of JOB_ID of API: each batch's outcome, a failed batch's error, the job's end."""
    jobs = _job_api(cortex_url)
    if not follow:
        click.echo(jobs.log(api, job_id), nl=False)
        return
    try:
        for line in jobs.follow_log(api, job_id):
            click.echo(line, nl=False)
    except KeyboardInterrupt:
        return
