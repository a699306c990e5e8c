"""`tritonize serve`: the options of a server run, then server/serve.py."""

import sys

import click

from tritonize.adapter.runtime.constants import (
    ADMIN_TOKEN_ENV,
    DEFAULT_CORTEX_PORT,
    DEFAULT_HEADER_PATTERN,
    DEFAULT_PORTS,
)
from tritonize.cli.values import parse_duration, parse_size, parse_timeout


def _docker_options(func):
    for decorator in reversed(
        [
            click.option(
                "--docker", "use_docker", is_flag=True, help="Run Triton in a container of the official image."
            ),
            click.option("--image", help="Triton image (default: the tested release, see docs/docker.md).  [--docker]"),
            click.option(
                "--gpus",
                "docker_gpus",
                help="GPUs for the container: all or 0,1 (default: all if a model has GPU instances).  [--docker]",
            ),
            click.option("--shm-size", help="/dev/shm size of the container, at least 1g (default 1g).  [--docker]"),
            click.option("--detach", is_flag=True, help="Leave the container running once ready.  [--docker]"),
            click.option("--name", "container_name", help="Container name (default tritonize-REPO-PORT).  [--docker]"),
        ]
    ):
        func = decorator(func)
    return func


def _docker_settings(use_docker, image, docker_gpus, shm_size, detach, container_name):
    """DockerOptions for `serve --docker`, None for the local server."""
    from tritonize.adapter.instances import parse_gpus
    from tritonize.server.docker_launcher import DockerOptions

    given = [
        flag
        for flag, value in (
            ("--image", image),
            ("--gpus", docker_gpus),
            ("--shm-size", shm_size),
            ("--detach", detach),
            ("--name", container_name),
        )
        if value
    ]
    if not use_docker:
        if given:
            raise click.UsageError(f"{given[0]} applies to the Docker launcher: add --docker")
        return None
    defaults = DockerOptions()
    return DockerOptions(
        image=image or defaults.image,
        gpus=parse_gpus(docker_gpus, "--gpus"),
        shm_size=shm_size or defaults.shm_size,
        detach=detach,
        name=container_name,
    )


@click.command()
@click.argument("model_repository", default="model_repository", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for all).")
@click.option("--http-port", default=DEFAULT_PORTS["http"], show_default=True)
@click.option("--grpc-port", default=DEFAULT_PORTS["grpc"], show_default=True)
@click.option("--metrics-port", default=DEFAULT_PORTS["metrics"], show_default=True)
@click.option(
    "--header-pattern",
    default=DEFAULT_HEADER_PATTERN,
    show_default=True,
    help="Regex of request headers passed to predictors as `headers`.",
)
@click.option(
    "--forward-sensitive-headers",
    is_flag=True,
    help="Also pass Authorization, Cookie, Host and Content-Length headers to predictors.",
)
@click.option("--ready-timeout", default=300.0, show_default=True, help="Seconds to wait for models to load.")
@click.option("--verbose", "-v", count=True, help="Show Triton's own log (-vv for its verbose log).")
@click.option(
    "--cpu", "cpu_only", is_flag=True, help="Run models built for GPUs on CPU instances (local testing without a GPU)."
)
@click.option(
    "--admin-token",
    envvar=ADMIN_TOKEN_ENV,
    help="Token for the admin APIs (header tritonize-admin-token); default: a new random one, printed.  "
    "[env TRITONIZE_ADMIN_TOKEN]",
)
@click.option("--exit-on-error", is_flag=True, help="Stop if any API fails to load (default: serve the others).")
@click.option(
    "--drain-notice",
    help="On SIGTERM, say not ready for this long while still answering, so load balancers take this "
    "server out before it refuses requests (e.g. 2s; default 2s with --host beyond loopback, else 0).",
)
@click.option(
    "--max-body-size",
    default="64m",
    show_default=True,
    help="Largest request body predictors accept (e.g. 512k, 10m); bigger ones get 400 (413 on the Cortex endpoint).",
)
@click.option(
    "--latency-percentiles",
    is_flag=True,
    help="Export p50/p99 latency summaries in /metrics (shown by `tritonize status`); costs ~20 % throughput.",
)
@click.option(
    "--debug-errors", is_flag=True, help="Put the exception text in 500 answers (development; the log always has it)."
)
@click.option(
    "--cortex-port",
    default=DEFAULT_CORTEX_PORT,
    show_default=True,
    help="Port of the Cortex endpoint: POST /<api> with the raw body, as Cortex clients call it.",
)
@click.option("--no-cortex", is_flag=True, help="Do not start the Cortex endpoint (Triton's own ports only).")
@click.option(
    "--request-timeout",
    help="Default request timeout of the APIs whose spec sets none (e.g. 30s, 2m): an instance whose predict "
    "runs longer is ended and reloaded. Default: none.",
)
@click.option(
    "--job-store",
    type=click.Path(file_okay=False),
    help="Folder of the BatchAPI jobs (their state, logs and dead letters; kept across restarts). "
    "Default: $TRITONIZE_JOB_STORE, else a folder under ~/.cache/tritonize/jobs/ for this repository.",
)
@click.option(
    "--watch",
    "watch_source",
    metavar="SOURCE",
    type=click.Path(exists=True, dir_okay=False),
    help="Development: build SOURCE (a cortex.yaml or a predictor file) and serve it instead of MODEL_REPOSITORY; "
    "when an API's project files change, rebuild and reload that API (the previous version serves until then).",
)
@_docker_options
@click.pass_context
def serve(
    ctx,
    model_repository,
    host,
    http_port,
    grpc_port,
    metrics_port,
    header_pattern,
    forward_sensitive_headers,
    ready_timeout,
    verbose,
    cpu_only,
    admin_token,
    exit_on_error,
    drain_notice,
    max_body_size,
    latency_percentiles,
    debug_errors,
    cortex_port,
    no_cortex,
    request_timeout,
    job_store,
    watch_source,
    **docker_settings,
):
    """Run Triton (from the nvidia-pytriton wheel) on MODEL_REPOSITORY until Ctrl-C."""
    from tritonize.server.options import ServerOptions
    from tritonize.server.serve import serve as run_server

    options = ServerOptions(
        model_repository,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        header_pattern=header_pattern,
        forward_sensitive_headers=forward_sensitive_headers,
        log_verbose=max(verbose - 1, 0),
        cpu_only=cpu_only,
        admin_token=admin_token or None,
        exit_on_error=exit_on_error,
        drain_notice_s=None if drain_notice is None else parse_duration(drain_notice, "--drain-notice"),
        max_body_bytes=parse_size(max_body_size, "--max-body-size"),
        latency_percentiles=latency_percentiles,
        debug_errors=debug_errors,
        cortex_port=None if no_cortex else cortex_port,
        request_timeout_s=parse_timeout(request_timeout, "--request-timeout"),
        job_store=job_store,
    )
    if verbose:
        options.extra_args.append("--log-info=true")
    docker = _docker_settings(**docker_settings)
    out = lambda line: click.echo(line, err=True)  # noqa: E731
    if watch_source is None:
        sys.exit(run_server(options, out=out, ready_timeout_s=ready_timeout, docker=docker))
    from tritonize.server.watch import WatchedSource

    if ctx.get_parameter_source("model_repository") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--watch serves its own build of SOURCE: give MODEL_REPOSITORY or --watch, not both")
    if docker is not None:
        raise click.UsageError("--watch runs the local server: drop --docker")
    # --cpu: SOURCE is built for CPU instances here, rather than a built repository rewritten.
    with WatchedSource(watch_source, kind="cpu" if cpu_only else None, out=out) as watch:
        options.model_repository, options.cpu_only = watch.repository, False
        sys.exit(run_server(options, out=out, ready_timeout_s=ready_timeout, watch=watch))
