"""The pod in CI (issue 22.3, 21.4, 23.19): a project built, `tritonize docker build` on the stand-in
Triton image, `tritonize deploy k8s --image`, and the generated Deployment played as a real pod with
podman (tests/pods.py). Then: local `tritonize serve`, `docker run` of the same image and the pod give
the same answers and the same failure behaviour for the same project (tests/fixtures/production).

Images are built once per module; every pod, volume, container and image made here is removed, also
on failure. Skips (saying why) only without a Docker engine or podman.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml
from conftest import FIXTURES, ServeProcess, run_tritonize
from docker_engine import docker, serve_wheel_index, standin_image_or_skip
from pods import PlayedPod, played_copy, podman, podman_env, podman_unavailable
from production_checks import answers, check_answers, child_named, cortex_post, urllib_call, wait_until

from tritonize.health.stubs import live_stubs

pytestmark = pytest.mark.e2e

TAG = f"localhost/tritonize-e2e-pod:{os.getpid()}"  # localhost/: podman load keeps the name as is
KILL_ECHO_STUB = (
    "import os, signal\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        argv = open('/proc/%s/cmdline' % pid, 'rb').read().split(b'\\0')\n"
    "    except OSError:\n"
    "        continue\n"
    "    if argv[0].endswith(b'triton_python_backend_stub') and b'/echo/' in argv[1]:\n"
    "        os.kill(int(pid), signal.SIGKILL); print(pid)\n"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(model repository, image tag): the production project built and `tritonize docker build`-ed."""
    standin = standin_image_or_skip()
    work = tmp_path_factory.mktemp("pod")
    shutil.copytree(os.path.join(FIXTURES, "production"), work / "project")
    run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(work / "repo"))
    server, index = serve_wheel_index(work / "index")
    try:
        result = run_tritonize(
            "docker", "build", str(work / "repo"), "-t", TAG, "--image", standin, "--pip-index-url", index, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        yield work, work / "repo"
    finally:
        server.shutdown()
        docker("rmi", "-f", TAG, check=False)


@pytest.fixture(scope="module")
def pods_env(built, tmp_path_factory):
    work, _ = built
    env = podman_env(str(work / "podman"))
    why = podman_unavailable(env)
    if why:
        pytest.skip(why)
    load = subprocess.run(f"docker save {TAG} | podman load", shell=True, env=env, capture_output=True, text=True)
    assert load.returncode == 0, load.stderr
    try:
        yield env
    finally:
        podman(env, "rmi", "--force", TAG, check=False)


@pytest.fixture(scope="module")
def pod(built, pods_env):
    """The Deployment from `tritonize deploy k8s --image`, played (a copy), ready."""
    work, repo = built
    result = run_tritonize("deploy", "k8s", str(repo), "--image", TAG, "-o", str(work / "deploy"), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(work / "deploy" / "deployment.yaml") as f:
        documents = list(yaml.safe_load_all(f))
    deployment, name = played_copy(documents, f"t{os.getpid()}", str(work))
    played = PlayedPod(pods_env, str(work), deployment, name)
    try:
        played.play()
        deadline = time.monotonic() + 240
        while not played.probe("startupProbe"):
            status, _ = played.state()
            if status != "running" or time.monotonic() > deadline:
                pytest.fail(f"the pod's container is {status}, not ready; its log:\n{played.logs()[-6000:]}")
            time.sleep(1)
        played.first_answers = answers(played.call)  # before any test kills or stops anything
        yield played
    finally:
        played.remove()


def test_the_generated_deployment_runs_as_a_pod_and_heals_itself(pod):
    status, pid = pod.state()
    assert status == "running", pod.logs()
    # Every probe, run as the kubelet would, passes.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert pod.probe(probe), (probe, pod.logs())
    # POST /<api> on the Cortex endpoint's port and KServe v2 on 8000 answer; the API whose __init__
    # raised leaves the others answering, and readiness names it.
    check_answers(pod.first_answers)
    ready = json.loads(pod.call("GET", 8003, "/ready")[1])
    assert ready["ready"] is True and ready["apis"]["echo"] == "ready" and "broken" in ready["apis"], ready
    assert not ready["apis"]["broken"].startswith("ready")
    # securityContext played for real: non-root, read-only root filesystem, /tmp and /dev/shm writable.
    assert pod.exec("python3", "-c", "import os; print(os.getuid())").stdout.strip() == "1000"
    assert pod.exec("touch", "/models/x").returncode != 0
    assert pod.exec("touch", "/tmp/x", "/dev/shm/x").returncode == 0
    # A killed instance inside the pod is reloaded by the supervisor: no restart of the container.
    killed = pod.exec("python3", "-c", KILL_ECHO_STUB)
    assert killed.stdout.strip(), killed.stderr
    wait_until(lambda: "API 'echo': reloaded in" in pod.logs(), 60, "healed in the pod", log=pod.logs)
    assert cortex_post(pod.call, "echo", {"after": 1})[0] == 200
    assert pod.state() == ("running", pid) and pod.probe("livenessProbe")
    # SIGTERM (what the kubelet sends): drained and stopped within the grace period, exit code 0.
    grace = pod.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    podman(pod.env, "stop", "--time", str(grace), pod.container(), timeout=grace + 60)
    code = podman(pod.env, "inspect", pod.container(), "--format", "{{.State.ExitCode}}").stdout.strip()
    assert code == "0" and "stopping (readiness false" in pod.logs(), pod.logs()


def _docker_run(repo_tag, name):
    docker("run", "-d", "--name", name, "--shm-size", "1g", "-p", "127.0.0.1::8000", "-p", "127.0.0.1::8080",
           "-p", "127.0.0.1::8003", repo_tag)  # fmt: skip
    ports = {}
    for port in (8000, 8080, 8003):
        ports[port] = int(docker("port", name, f"{port}/tcp").stdout.split(":")[-1])
    return ports


def test_local_serve_docker_run_and_the_pod_answer_and_fail_alike(built, pod):
    """Same answers, same refusal of the broken API, same healing of a killed instance."""
    work, repo = built
    pod_answers = pod.first_answers

    serve = ServeProcess(str(repo))
    try:
        local = urllib_call(ports={8000: serve.http_port, 8080: serve.cortex_port})
        # (Triton's strict /v2/health/ready stays false: an API failed to load; the others serve)
        wait_until(lambda: "Press Ctrl-C to stop." in serve.output(), 180, "local serve ready")
        serve.wait_cortex()
        local_answers = answers(local)
        server_pid = child_named(serve.process.pid, "tritonserver")
        (echo,) = [s for s in live_stubs(server_pid).values() if s.model == "echo"]
        os.kill(echo.pid, signal.SIGKILL)
        wait_until(lambda: "API 'echo': reloaded in" in serve.output(), 60, "healed by local serve", log=serve.output)
        assert cortex_post(local, "echo", {"after": 1})[0] == 200
    finally:
        serve.stop(timeout=90)

    name = f"tz-e2e-pod-run-{os.getpid()}"
    try:
        ports = _docker_run(TAG, name)
        run = urllib_call(ports=ports)
        wait_until(lambda: run("GET", 8003, "/ready")[0] == 200, 180, "docker run ready")
        run_answers = answers(run)
        killed = docker("exec", name, "python3", "-c", KILL_ECHO_STUB)
        assert killed.stdout.strip(), killed.stderr
        logs = lambda: docker("logs", name).stdout + docker("logs", name).stderr  # noqa: E731
        wait_until(lambda: "API 'echo': reloaded in" in logs(), 60, "healed in docker run", log=logs)
        assert cortex_post(run, "echo", {"after": 1})[0] == 200
        stopped = docker("stop", "--time", "30", name, timeout=90)
        assert stopped.returncode == 0
        assert docker("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip() == "0"
    finally:
        docker("rm", "-f", name, check=False)

    check_answers(pod_answers)
    assert local_answers == run_answers == pod_answers, (local_answers, run_answers, pod_answers)
