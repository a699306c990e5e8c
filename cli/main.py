"""The `tritonize` command: each subcommand parses, calls one function, prints."""

import json
import sys

import click
import yaml

from tritonize.adapter.runtime.constants import (
    ADMIN_TOKEN_ENV,
    DEFAULT_CORTEX_PORT,
    DEFAULT_HEADER_PATTERN,
    DEFAULT_PORTS,
    DEFAULT_URLS,
)
from tritonize.adapter.runtime.errors import PredictorLoadError
from tritonize.cli.cluster_commands import deploy, docker, status_command
from tritonize.errors import PredictError, SpecError, TritonizeError


def _key_values(items, what, parse_values=False):
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=what)
        # --config values are YAML scalars (n=3 -> 3, flag=true -> True), as in cortex.yaml.
        result[key] = yaml.safe_load(value) if parse_values and value else value
    return result


def _repeatable(items, what):
    """--param/--header KEY=VALUE...: {key: value}, or {key: [values]} for a repeated key (getlist)."""
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=what)
        if key in result:
            previous = result[key]
            result[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[key] = value
    return result


def _read_data(data):
    if data.startswith("@"):
        try:
            with open(data[1:], "rb") as f:
                return f.read()
        except OSError as exc:
            raise click.BadParameter(f"{data[1:]}: {exc.strerror}", param_hint="--data") from None
    return data.encode("utf-8")


def _print_body(body, content_type, output):
    if output:
        with open(output, "wb") as f:
            f.write(body)
        click.echo(f"wrote {len(body)} bytes ({content_type}) to {output}", err=True)
    elif content_type.startswith("application/json"):
        click.echo(json.dumps(json.loads(body), indent=2, ensure_ascii=False) if body.strip() else "")
    elif content_type.startswith("text/"):
        click.echo(body.decode("utf-8", errors="replace"))
    elif sys.stdout.isatty():
        click.echo(f"<{len(body)} bytes of {content_type}; use --output FILE to save them>")
    else:
        sys.stdout.buffer.write(body)


def _print_chunks(chunks, output):
    """A stream's chunks as they arrive: JSON one per line, text as it comes, bytes raw (or to FILE)."""
    sink = open(output, "wb") if output else None
    mid_line = False
    try:
        for body, content_type in chunks:
            if sink:
                sink.write(body)
                sink.flush()
            elif content_type.startswith("application/json"):
                click.echo(json.dumps(json.loads(body), ensure_ascii=False) if body.strip() else "null")
                mid_line = False
            elif content_type.startswith("text/"):
                text = body.decode("utf-8", errors="replace")
                sys.stdout.write(text)
                sys.stdout.flush()
                mid_line = not text.endswith("\n")
            else:
                sys.stdout.buffer.write(body)
                sys.stdout.buffer.flush()
    finally:
        if mid_line:
            click.echo("")
        if sink:
            sink.close()


def _reply_chunks(replies):
    """`tritonize test --stream`'s Replies as chunks; an error chunk ends the stream as the server's would."""
    for reply in replies:
        if not reply.ok:
            raise PredictError(reply.status, reply.message)
        yield reply.body, reply.content_type


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
    help="Typed tensor input, e.g. x:float32:-1,4 (repeatable; with --output).",
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
):
    """Write a Triton model repository for SOURCE (predictor.py or cortex.yaml)."""
    from tritonize.adapter.build import build as build_repository
    from tritonize.adapter.instances import parse_gpus
    from tritonize.adapter.tensor_spec import parse_tensor_option

    config = _key_values(config_items, "--config", parse_values=True)
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
    )
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"Wrote {result.output_dir} ({', '.join(api.name for api in result.apis)})")
    for line in result.instance_summary():
        click.echo(line)
    click.echo(f"Serve it with: tritonize serve {output}")


def _docker_options(func):
    for decorator in reversed(
        [
            click.option(
                "--docker", "use_docker", is_flag=True, help="Run Triton in a container of the official image."
            ),
            click.option("--image", help="Triton image (default: the tested release, see README).  [--docker]"),
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
    from tritonize.server.docker import DockerOptions

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


@cli.command()
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
@_docker_options
def serve(
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
        drain_notice_s=None if drain_notice is None else _duration(drain_notice, "--drain-notice"),
        max_body_bytes=_size(max_body_size, "--max-body-size"),
        latency_percentiles=latency_percentiles,
        debug_errors=debug_errors,
        cortex_port=None if no_cortex else cortex_port,
        request_timeout_s=_timeout(request_timeout, "--request-timeout"),
    )
    if verbose:
        options.extra_args.append("--log-info=true")
    sys.exit(
        run_server(
            options,
            out=lambda line: click.echo(line, err=True),
            ready_timeout_s=ready_timeout,
            docker=_docker_settings(**docker_settings),
        )
    )


def _timeout(text, what):
    from tritonize.adapter.spec_values import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text, what, example="30s or 2m")
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


def _size(text, what):
    from tritonize.adapter.spec_values import parse_size

    try:
        return parse_size(text, what)
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


def _request_options(func):
    for decorator in reversed(
        [
            click.option("--data", "-d", required=True, help="Request body, or @FILE."),
            click.option("--content-type", help="Body content type (default application/json)."),
            click.option(
                "--param", "params", multiple=True, metavar="KEY=VALUE", help="Query parameter (repeat a key: getlist)."
            ),
            click.option(
                "--header",
                "headers",
                multiple=True,
                metavar="KEY=VALUE",
                help="Request header (repeatable; a repeated name's values are joined with ', ').",
            ),
            click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the response body to FILE."),
        ]
    ):
        func = decorator(func)
    return func


@cli.command()
@click.argument("api")
@_request_options
@click.option("--protocol", type=click.Choice(["http", "grpc"]), default="http", show_default=True)
@click.option("--url", help="host:port (default 127.0.0.1:8000 for http, 127.0.0.1:8001 for grpc).")
@click.option("--stream", is_flag=True, help="A streaming API: print chunks as they arrive (HTTP: SSE, gRPC: stream).")
def predict(api, data, content_type, params, headers, output, protocol, url, stream):
    """Send one request to API on a running server and print the response."""
    from tritonize.client.client import Client

    with Client(url or DEFAULT_URLS[protocol], protocol=protocol) as client:
        if stream:
            chunks = client.stream_raw(
                api,
                _read_data(data),
                content_type=content_type,
                query_params=_repeatable(params, "--param"),
                headers=_repeatable(headers, "--header"),
            )
            return _print_chunks(chunks, output)
        body, response_type = client.predict_raw(
            api,
            _read_data(data),
            content_type=content_type,
            query_params=_repeatable(params, "--param"),
            headers=_repeatable(headers, "--header"),
        )
    _print_body(body, response_type, output)


@cli.command("test")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@_request_options
@click.option("--api", "api_name", help="Which API of a spec file.")
@click.option("--class", "class_name", default="PythonPredictor", show_default=True)
@click.option("--config", "config_items", multiple=True, metavar="KEY=VALUE")
@click.option("--stream", is_flag=True, help="A streaming API: print each chunk as the generator yields it.")
def test_command(source, data, content_type, params, headers, output, api_name, class_name, config_items, stream):
    """Load the predictor in this process and answer one request (no Triton needed)."""
    from tritonize.server.in_process import dry_run, dry_run_stream

    run = dry_run_stream if stream else dry_run
    answer, warnings = run(
        source,
        _read_data(data),
        content_type=content_type,
        query_params=_repeatable(params, "--param"),
        headers=_repeatable(headers, "--header"),
        api_name=api_name,
        class_name=class_name,
        config=_key_values(config_items, "--config", parse_values=True) or None,
    )
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if stream:
        return _print_chunks(_reply_chunks(answer), output)
    reply = answer
    if not reply.ok:
        click.secho(f"error: [{reply.status}] {reply.message}", fg="red", err=True)
        sys.exit(1)
    _print_body(reply.body, reply.content_type, output)


def _duration(text, what="--duration"):
    from tritonize.adapter.spec_values import parse_duration

    try:
        return parse_duration(text, what)
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


@cli.command("bench")
@click.argument("api")
@click.option("--data", "-d", required=True, help="Request body (or, for typed APIs, JSON {tensor: values}), or @FILE.")
@click.option("--concurrency", default="1,8,32", show_default=True, help="Comma-separated concurrency levels.")
@click.option("--duration", default="10s", show_default=True, help="Measuring time per level (e.g. 10s, 500ms).")
@click.option("--protocol", type=click.Choice(["http", "grpc"]), default="http", show_default=True)
@click.option("--url", help="host:port (default 127.0.0.1:8000 for http, 127.0.0.1:8001 for grpc).")
@click.option("--http-url", help="host:port of the HTTP endpoint, for model metadata when --protocol grpc.")
@click.option("--content-type", help="Body content type (default application/json).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Query parameter (repeat a key: getlist).")
@click.option("--engine", type=click.Choice(["auto", "perf_analyzer", "builtin"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_command(api, data, concurrency, duration, protocol, url, http_url, content_type, params, engine, as_json):
    """Load API on a running server: throughput and p50/p90/p99 latency per concurrency."""
    from tritonize.client.bench import bench, format_table

    try:
        levels = [int(c) for c in concurrency.split(",") if c.strip()]
    except ValueError:
        raise click.BadParameter("expected comma-separated integers", param_hint="--concurrency") from None
    used, results = bench(
        api,
        _read_data(data),
        levels,
        _duration(duration),
        protocol=protocol,
        url=url,
        http_url=http_url,
        content_type=content_type,
        query_params=_repeatable(params, "--param"),
        engine=engine,
    )
    if as_json:
        click.echo(json.dumps({"engine": used, "results": [r.as_dict() for r in results]}, indent=2))
    else:
        click.echo(format_table(used, results))


# Containers and clusters: cli/cluster_commands.py.
cli.add_command(docker)
cli.add_command(deploy)
cli.add_command(status_command)


def main():
    cli(prog_name="tritonize")


if __name__ == "__main__":
    main()
