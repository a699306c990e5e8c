"""`tritonize tune`: the best instances x batch size x batch interval within a latency budget."""

import os

import click

from tritonize.cli.values import parse_duration, read_data


@click.command("tune")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--api", "api_name", help="Which API of a spec file.")
@click.option("--p99", help="Latency budget: p99 at most this (e.g. 50ms). One of --p99/--p90/--p50.")
@click.option("--p90", help="Latency budget on the p90.")
@click.option("--p50", help="Latency budget on the p50.")
@click.option("--payload", "--data", "-d", "data", required=True, help="One request's body, or @FILE.")
@click.option("--content-type", help="Body content type (default application/json).")
@click.option("--max-minutes", type=float, default=10.0, show_default=True, help="Stop searching after this.")
@click.option("--max-candidates", type=click.IntRange(1), help="Stop after measuring this many candidates.")
@click.option("--level-duration", default="3s", show_default=True, help="Measuring time per concurrency level.")
@click.option("--max-concurrency", type=click.IntRange(1), default=64, show_default=True)
@click.option("--max-instances", type=click.IntRange(1, 64), help="Most instances tried (default: 4 x CPUs, 8 to 16).")
@click.option("--kind", type=click.Choice(["cpu", "gpu"]), help="Instance kind (default: the spec's, as build).")
@click.option("--gpus", help="GPU ids, e.g. 0,1, or 'all': tune instances per GPU.")
@click.option(
    "--try-batching",
    is_flag=True,
    help="The predictor takes a list of payloads as well as one: also try server_side_batching on and off.",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False),
    help="Where the table (points.csv) and plot (tune.png) go (default: tune-<api>).",
)
@click.option("--exhaustive", is_flag=True, help="Measure every candidate (slow: for checking the search).")
@click.option("--write", is_flag=True, help="Write the chosen settings into the spec file (comments are not kept).")
def tune_command(
    source,
    api_name,
    p99,
    p90,
    p50,
    data,
    content_type,
    max_minutes,
    max_candidates,
    level_duration,
    max_concurrency,
    max_instances,
    kind,
    gpus,
    try_batching,
    report_dir,
    exhaustive,
    write,
):
    """Serve SOURCE's API with candidate settings and find the most requests/s within a latency budget."""
    from tritonize.adapter.instances import parse_gpus
    from tritonize.tune import report as tune_report
    from tritonize.tune.runner import TuneOptions, tune
    from tritonize.tune.search import parse_budget

    options = TuneOptions(
        budget=parse_budget(p99, p50, p90),
        data=read_data(data),
        content_type=content_type,
        max_minutes=max_minutes,
        max_candidates=max_candidates,
        level_s=parse_duration(level_duration, "--level-duration"),
        max_concurrency=max_concurrency,
        max_instances=max_instances,
        gpus=parse_gpus(gpus, "--gpus"),
        kind=kind,
        try_batching=try_batching,
        exhaustive=exhaustive,
    )
    report = tune(source, options, api_name=api_name)
    click.echo(tune_report.format_table(report))
    folder = report_dir or f"tune-{report.api.name}"
    os.makedirs(folder, exist_ok=True)
    tune_report.write_csv(report, os.path.join(folder, "points.csv"))
    plot = os.path.join(folder, "tune.png")
    if tune_report.write_plot(report, plot):
        click.echo(f"Table: {os.path.join(folder, 'points.csv')}  Plot: {plot}")
    else:
        click.echo(f"Table: {os.path.join(folder, 'points.csv')}  (no plot: pip install 'tritonize[tune]' for it)")
    for line in tune_report.summary(report):
        click.echo(line)
    lines = tune_report.spec_lines(report)
    if not lines:
        raise SystemExit(1)
    click.echo("The spec's lines:" if tune_report.is_spec(source) else "Build with:")
    for line in lines:
        click.echo(f"  {line}")
    if write:
        click.echo(f"Wrote {tune_report.write_spec(report)} into {source}")
