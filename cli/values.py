"""Command-line values: KEY=VALUE lists, @FILE data, sizes and durations; printing answers."""

import json
import sys

import click
import yaml

from tritonize.errors import PredictError, SpecError


def key_values(items, what, parse_values=False):
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=what)
        # --config values are YAML scalars (n=3 -> 3, flag=true -> True), as in cortex.yaml.
        result[key] = yaml.safe_load(value) if parse_values and value else value
    return result


def repeatable(items, what):
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


def read_data(data):
    if data.startswith("@"):
        try:
            with open(data[1:], "rb") as f:
                return f.read()
        except OSError as exc:
            raise click.BadParameter(f"{data[1:]}: {exc.strerror}", param_hint="--data") from None
    return data.encode("utf-8")


def print_body(body, content_type, output):
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


def print_chunks(chunks, output):
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


def reply_chunks(replies):
    """`tritonize test --stream`'s Replies as chunks; an error chunk ends the stream as the server's would."""
    for reply in replies:
        if not reply.ok:
            raise PredictError(reply.status, reply.message)
        yield reply.body, reply.content_type


def parse_timeout(text, what):
    from tritonize.adapter.spec_values import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text, what, example="30s or 2m")
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


def parse_size(text, what):
    from tritonize.adapter.spec_values import parse_size

    try:
        return parse_size(text, what)
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


def parse_duration(text, what="--duration"):
    from tritonize.adapter.spec_values import parse_duration

    try:
        return parse_duration(text, what)
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None
