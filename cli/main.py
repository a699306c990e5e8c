"""The `tritonize` command: each subcommand parses, calls one function, prints."""

import sys

import click

from tritonize.adapter.runtime.errors import PredictorLoadError
from tritonize.cli.cluster_commands import deploy, docker, status_command
from tritonize.cli.values import key_values
from tritonize.errors import TritonizeError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TritonizeError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except PredictorLoadError as exc:
            click.secho(f"error: the predictor failed to load:\n{exc}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="tritonize")
def cli():
    """Run Cortex-style Python predictors, unchanged, on NVIDIA Triton Inference Server."""


@cli.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default="model_repository", show_default=True, help="Model repository to write.")
@click.option("--name", help="API (model) name; default: the predictor file's name.")
@click.option("--class", "class_name", default="PythonPredictor", show_default=True, help="Predictor class.")
@click.option(
    "--config", "config_items", multiple=True, metavar="KEY=VALUE", help="predictor.config entry (repeatable)."
)
@click.option("--force", is_flag=True, help="Replace an existing repository.")
@click.option("--max-batch-size", type=int, help="server_side_batching: predict() gets lists of up to N requests.")
@click.option("--batch-interval", help="server_side_batching: how long to wait to fill a batch (e.g. 50ms, 0.1s).")
@click.option("--max-queue-size", type=int, help="Requests queued beyond this get 503 at once (default 0: no limit).")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME:DTYPE[:SHAPE][:ragged]",
    help="Typed tensor input, e.g. x:float32:-1,4 (repeatable; with --output-tensor).",
)
@click.option(
    "--output-tensor",
    "outputs",
    multiple=True,
    metavar="NAME:DTYPE[:SHAPE]",
    help="Typed tensor output, e.g. y:float32:3 (repeatable).",
)
@click.option(
    "--kind", type=click.Choice(["cpu", "gpu"]), help="Instance kind (default: cpu, or the spec's compute.gpu)."
)
@click.option("--instances", type=click.IntRange(1, 64), help="Instances (processes): per GPU on GPU, in all on CPU.")
@click.option("--gpus", help="GPU ids, e.g. 0,1 (implies --kind gpu), or 'all'.")
@click.option(
    "--api-kind",
    type=click.Choice(["auto", "RealtimeAPI", "BatchAPI"]),
    default="auto",
    show_default=True,
    help="A predictor file's API kind; auto: a BatchAPI if predict() takes batch_id or __init__ takes job_spec.",
)
def build(
    source,
    output,
    name,
    class_name,
    config_items,
    force,
    max_batch_size,
    batch_interval,
    max_queue_size,
    inputs,
    outputs,
    kind,
    instances,
    gpus,
    api_kind,
):
    """Write a Triton model repository for SOURCE (predictor.py or cortex.yaml)."""
    from tritonize.adapter.build import build as build_repository
    from tritonize.adapter.instances import parse_gpus
    from tritonize.adapter.tensor_spec import parse_tensor_option

    config = key_values(config_items, "--config", parse_values=True)
    batching = {
        k: v
        for k, v in (
            ("max_batch_size", max_batch_size),
            ("batch_interval", batch_interval),
            ("max_queue_size", max_queue_size),
        )
        if v is not None
    }
    if batch_interval is not None and max_batch_size is None:
        raise click.BadParameter("needs --max-batch-size too", param_hint="--batch-interval")
    tensors = None
    if inputs or outputs:
        tensors = {
            "inputs": [parse_tensor_option(t, True) for t in inputs],
            "outputs": [parse_tensor_option(t, False) for t in outputs],
        }
    result = build_repository(
        source,
        output,
        name=name,
        class_name=class_name,
        config=config or None,
        force=force,
        batching=batching or None,
        tensors=tensors,
        kind=kind,
        instances=instances,
        gpus=parse_gpus(gpus, "--gpus"),
        api_kind=api_kind,
    )
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"Wrote {result.output_dir} ({', '.join(api.name for api in result.apis)})")
    for line in result.instance_summary():
        click.echo(line)
    click.echo(f"Serve it with: tritonize serve {output}")


from tritonize.cli.job_commands import job  # noqa: E402
from tritonize.cli.request_commands import bench_command, predict, test_command  # noqa: E402
from tritonize.cli.schema_command import schema_command  # noqa: E402
from tritonize.cli.serve_command import serve  # noqa: E402
from tritonize.cli.tune_command import tune_command  # noqa: E402

cli.add_command(serve)
cli.add_command(predict)
cli.add_command(test_command)
cli.add_command(bench_command)
cli.add_command(docker)
cli.add_command(deploy)
cli.add_command(status_command)
cli.add_command(schema_command)
cli.add_command(tune_command)
cli.add_command(job)


def main():
    cli(prog_name="tritonize")


if __name__ == "__main__":
    main()
