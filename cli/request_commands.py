"""`tritonize predict`, `test` and `bench`: one request, a dry run, a load."""

import json
import sys

import click

from tritonize.adapter.runtime.constants import (
    DEFAULT_URLS,
)
from tritonize.cli.values import (
    key_values,
    parse_duration,
    print_body,
    print_chunks,
    read_data,
    repeatable,
    reply_chunks,
)


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


@click.command()
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
                read_data(data),
                content_type=content_type,
                query_params=repeatable(params, "--param"),
                headers=repeatable(headers, "--header"),
            )
            return print_chunks(chunks, output)
        body, response_type = client.predict_raw(
            api,
            read_data(data),
            content_type=content_type,
            query_params=repeatable(params, "--param"),
            headers=repeatable(headers, "--header"),
        )
    print_body(body, response_type, output)


@click.command("test")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@_request_options
@click.option("--api", "api_name", help="Which API of a spec file.")
@click.option("--class", "class_name", default="PythonPredictor", show_default=True)
@click.option("--config", "config_items", multiple=True, metavar="KEY=VALUE")
@click.option("--stream", is_flag=True, help="A streaming API: print each chunk as the generator yields it.")
def test_command(source, data, content_type, params, headers, output, api_name, class_name, config_items, stream):
    """Load the predictor in this process and answer one request (no Triton needed)."""
    from tritonize.server.dry_run import dry_run, dry_run_stream

    run = dry_run_stream if stream else dry_run
    answer, warnings = run(
        source,
        read_data(data),
        content_type=content_type,
        query_params=repeatable(params, "--param"),
        headers=repeatable(headers, "--header"),
        api_name=api_name,
        class_name=class_name,
        config=key_values(config_items, "--config", parse_values=True) or None,
    )
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if stream:
        return print_chunks(reply_chunks(answer), output)
    reply = answer
    if not reply.ok:
        click.secho(f"error: [{reply.status}] {reply.message}", fg="red", err=True)
        sys.exit(1)
    print_body(reply.body, reply.content_type, output)


@click.command("bench")
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
        read_data(data),
        levels,
        parse_duration(duration),
        protocol=protocol,
        url=url,
        http_url=http_url,
        content_type=content_type,
        query_params=repeatable(params, "--param"),
        engine=engine,
    )
    if as_json:
        click.echo(json.dumps({"engine": used, "results": [r.as_dict() for r in results]}, indent=2))
    else:
        click.echo(format_table(used, results))


# Containers and clusters: cli/cluster_commands.py.
