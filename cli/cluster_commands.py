"""`tritonize docker`, `tritonize deploy` and `tritonize status`: containers and clusters.

Registered on the `tritonize` group by cli/main.py; each command parses, calls one function, prints.
"""

import time

import click

from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV, DEFAULT_URLS


@click.group()
def docker():
    """Container images for model repositories."""


@docker.command("build")
@click.argument("model_repository", default="model_repository", type=click.Path())
@click.option("-t", "--tag", help="Image tag (default: tritonize-REPO:latest).")
@click.option("--image", help="Base Triton image (default: nvcr.io/nvidia/tritonserver:24.10-py3, Triton 2.51).")
@click.option(
    "-f",
    "--file",
    "dockerfile",
    type=click.Path(dir_okay=False),
    help="Where to write the Dockerfile (default: REPO.Dockerfile next to the repository).",
)
@click.option("--dry-run", is_flag=True, help="Write the Dockerfile and print the command; do not run docker.")
@click.option("--pip-index-url", metavar="URL", help="Package index for the APIs' requirements (a private index).")
@click.option("--pip-extra-index-url", "pip_extra_index_urls", metavar="URL", multiple=True,
              help="More package indexes (repeatable).")  # fmt: skip
def docker_build_command(model_repository, tag, image, dockerfile, dry_run, pip_index_url, pip_extra_index_urls):
    """Write a Dockerfile for MODEL_REPOSITORY (Triton image + the APIs' dependencies) and run `docker build`."""
    from tritonize.docker.build import docker_build
    from tritonize.server.docker_launcher import DEFAULT_IMAGE

    result = docker_build(
        model_repository,
        tag=tag,
        image=image or DEFAULT_IMAGE,
        dockerfile=dockerfile,
        dry_run=dry_run,
        pip_index_url=pip_index_url,
        pip_extra_index_urls=pip_extra_index_urls,
    )
    for note in result.notes:
        click.secho(f"note: {note}", fg="yellow", err=True)
    click.echo(f"Wrote {result.dockerfile}")
    command = " ".join(result.command)
    image_tag = result.command[result.command.index("-t") + 1]
    if dry_run:
        click.echo(f"Build it with: {command}")
    else:
        click.echo(f"Built {image_tag}")
    gpus = " --gpus all" if result.needs_gpus else ""
    click.echo(
        "Run it with: docker run --rm --shm-size 1g -p 8000:8000 -p 8001:8001 -p 8002:8002 -p 8080:8080"
        f"{gpus} {image_tag}  (8080: the Cortex endpoint, POST /<api>)"
    )


@click.group()
def deploy():
    """Kubernetes manifests for a model repository (see docs/kubernetes.md)."""


def _deploy_options(func):
    for decorator in reversed(
        [
            click.argument("source", type=click.Path(exists=True)),
            click.option("--image", help="Image from `tritonize docker build` (holds the repository at /models)."),
            click.option("--model-store", help="s3://, gs:// or as:// repository Triton reads (stock Triton image)."),
            click.option("-o", "--output", default="deploy", show_default=True, help="Folder for the manifests."),
            click.option("--name", help="Kubernetes name (default: the project's or repository's folder)."),
            click.option("--namespace", help="Namespace written into the manifests."),
            click.option(
                "--shm-size", default="1Gi", show_default=True, help="/dev/shm size (emptyDir, medium Memory)."
            ),
        ]
    ):
        func = decorator(func)
    return func


def _print_deploy(result):
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    for path in result.files:
        click.echo(f"wrote {path}")
    click.echo("next:")
    for step in result.instructions:
        click.echo(f"  {step}")


@deploy.command("k8s")
@_deploy_options
@click.option(
    "--autoscaler",
    type=click.Choice(["hpa", "keda", "none"]),
    default="hpa",
    show_default=True,
    help="HPA on prometheus-adapter's metric, or a KEDA ScaledObject (Prometheus trigger).",
)
@click.option(
    "--prometheus-url",
    default="http://prometheus-operated.monitoring.svc:9090",
    show_default=True,
    help="Prometheus that KEDA queries.",
)
@click.option(
    "--service-type",
    type=click.Choice(["ClusterIP", "LoadBalancer", "NodePort"]),
    default="ClusterIP",
    show_default=True,
)
@click.option(
    "--secret", "env_from_secret", help="Secret whose keys become environment (e.g. AWS_* for --model-store)."
)
@click.option(
    "--job-store-size",
    metavar="QUANTITY",
    help="A BatchAPI's job store: the PersistentVolumeClaim's size (default 10Gi; only with a BatchAPI).",
)
def deploy_k8s_command(source, **kwargs):
    """Deployment, Service, autoscaler and monitoring for SOURCE (cortex.yaml or a built repository)."""
    from tritonize.deploy.target import deploy_k8s

    _print_deploy(deploy_k8s(source, **kwargs))


@deploy.command("kserve")
@_deploy_options
def deploy_kserve_command(source, **kwargs):
    """A KServe InferenceService on KServe's Triton runtime (needs --model-store)."""
    from tritonize.deploy.target import deploy_kserve

    _print_deploy(deploy_kserve(source, **kwargs))


@click.command("status")
@click.argument("api", required=False)
@click.option(
    "--url", default=DEFAULT_URLS["http"], show_default=True, help="HTTP host:port of a replica or a Service."
)
@click.option("--metrics-url", help="host:port of /metrics (default: --url's host, port 8002).")
@click.option(
    "--token", envvar=ADMIN_TOKEN_ENV, help="Admin token for restricted endpoints (default: $TRITONIZE_ADMIN_TOKEN)."
)
@click.option(
    "--watch",
    "watch",
    type=float,
    is_flag=False,
    flag_value=2.0,
    default=None,
    help="Refresh every N seconds (default 2) until Ctrl-C.",
)
@click.option(
    "--cortex-url", help="host:port of the Cortex endpoint (TrafficSplitters, batch jobs; default: --url's host:8080)."
)
def status_command(api, url, metrics_url, token, watch, cortex_url):
    """Each API's state, instances, requests, errors, mean latency and queue time (p50/p99: serve
    --latency-percentiles); each TrafficSplitter's requests per target; each BatchAPI's job in progress."""
    from tritonize.client.batch_job_status import collect_with_jobs, format_batch_jobs
    from tritonize.client.status import default_metrics_url, format_table
    from tritonize.client.traffic_splitter_status import collect_splitters, default_cortex_url, format_splitters

    metrics_url = metrics_url or default_metrics_url(url)
    while True:
        statuses, batch_jobs = collect_with_jobs(url, metrics_url, cortex_url or default_cortex_url(url), token, api)
        table = format_table(statuses)
        splitters = [s for s in collect_splitters(cortex_url or default_cortex_url(url)) if api in (None, s["name"])]
        if splitters:
            table = f"{table}\n\n{format_splitters(splitters)}"
        if batch_jobs:
            table = f"{table}\n\n{format_batch_jobs(batch_jobs)}"
        if watch is None:
            click.echo(table)
            return
        click.clear()
        click.echo(f"{url}  (every {watch:g}s, Ctrl-C to stop)\n{table}")
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return
