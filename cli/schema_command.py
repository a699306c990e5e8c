"""`tritonize schema`: the JSON Schema of cortex.yaml, for editors and CI."""

import click


@click.command("schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write it to this file.")
def schema_command(output):
    """Print the JSON Schema of cortex.yaml (also shipped as schema/cortex.schema.json)."""
    from tritonize.adapter.spec_schema import cortex_json_schema_text

    text = cortex_json_schema_text()
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    click.echo(f"Wrote {output}", err=True)
