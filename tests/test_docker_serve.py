"""`serve --docker` against a fake docker executable (no Docker engine here): exact command lines."""

import json
import os
import shutil
import sys
import time
import urllib.request

import pytest
from conftest import FIXTURES, HAS_GPU, ServeProcess, free_ports, run_tritonize

from tritonize.adapter.build import build
from tritonize.errors import ServeError
from tritonize.server.docker_launcher import DEFAULT_IMAGE, DockerOptions, docker_run_args, gpu_args, size_in_bytes
from tritonize.server.gpus import gpu_needs
from tritonize.server.options import ServerOptions, model_control_args

FAKE_DOCKER_DIR = os.path.join(FIXTURES, "fake_docker")
TRITON_FLAGS = [
    "--model-repository=/models",
    "--disable-auto-complete-config",
    "--http-address=0.0.0.0",
    "--grpc-address=0.0.0.0",
    "--metrics-address=0.0.0.0",
    "--http-port=8000",
    "--grpc-port=8001",
    "--metrics-port=8002",
    "--http-header-forward-pattern=^x-",
    "--grpc-header-forward-pattern=^x-",
    "--exit-timeout-secs=10",
    "--allow-sagemaker=false",
    "--allow-vertex-ai=false",
]
# `serve` restricts the admin APIs in the container too (token from --admin-token).
RESTRICTED_FLAGS = [
    "--http-restricted-api=model-repository,shared-memory,statistics,trace,logging:tritonize-admin-token=T0K",
    "--grpc-restricted-protocol=model-repository,shared-memory,statistics,trace,logging:tritonize-admin-token=T0K",
]


@pytest.fixture
def repo(tmp_path):
    shutil.copytree(os.path.join(FIXTURES, "instances"), tmp_path / "proj")
    build(str(tmp_path / "proj" / "predictor.py"), str(tmp_path / "repo"), name="api")
    return str(tmp_path / "repo")


@pytest.fixture
def gpu_repo(tmp_path):
    shutil.copytree(os.path.join(FIXTURES, "instances"), tmp_path / "gproj")
    build(str(tmp_path / "gproj" / "predictor.py"), str(tmp_path / "grepo"), name="api", gpus=[1])
    return str(tmp_path / "grepo")


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """PATH starts with the fake docker; returns a function reading its recorded calls."""
    state = tmp_path / "docker-state"
    state.mkdir()
    log = tmp_path / "docker-calls.jsonl"
    monkeypatch.setenv("PATH", FAKE_DOCKER_DIR + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(state))
    monkeypatch.setenv("FAKE_DOCKER_PYTHON", sys.executable)

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return calls


def test_docker_run_command_line(repo):
    options = ServerOptions(repo, http_port=18000, grpc_port=18001, metrics_port=18002)
    args = docker_run_args(options, DockerOptions(), gpu_needs(repo), "tz")
    assert args == [
        "docker",
        "run",
        "--rm",
        "--init",
        "--name",
        "tz",
        "--shm-size",
        "1g",
        "-p",
        "127.0.0.1:18000:8000",
        "-p",
        "127.0.0.1:18001:8001",
        "-p",
        "127.0.0.1:18002:8002",
        "-v",
        f"{repo}:/models:ro",
        "-e",
        "TRITONIZE_CORTEX_PORT=off",  # a built image's supervisor: serve runs the endpoint on the host
        "-e",
        "TRITONIZE_DRAIN_NOTICE_S=0",
        "-e",
        "TRITONIZE_FORWARD_SENSITIVE_HEADERS=0",
        "-e",
        "TRITONIZE_HEADER_PATTERN=^x-",
        DEFAULT_IMAGE,
        "tritonserver",
        *TRITON_FLAGS,
    ]
    assert DEFAULT_IMAGE == "nvcr.io/nvidia/tritonserver:24.10-py3"


def test_docker_run_options_and_gpus(repo, gpu_repo):
    options = ServerOptions(
        repo,
        host="0.0.0.0",
        header_pattern="^x-(tenant|id)$",
        forward_sensitive_headers=True,
        log_verbose=1,
        extra_args=["--log-info=true"],
    )
    docker = DockerOptions(image="nvcr.io/nvidia/tritonserver:24.12-py3", gpus=[0, 1], shm_size="2g", detach=True)
    args = docker_run_args(options, docker, {}, "named")
    assert args[:8] == ["docker", "run", "--rm", "--init", "--name", "named", "--detach", "--shm-size"]
    assert args[args.index("-p") + 1] == "0.0.0.0:8000:8000"
    assert args[args.index("--gpus") : args.index("--gpus") + 2] == ["--gpus", '"device=0,1"']
    assert "TRITONIZE_FORWARD_SENSITIVE_HEADERS=1" in args and "TRITONIZE_HEADER_PATTERN=^x-(tenant|id)$" in args
    tail = args[args.index("nvcr.io/nvidia/tritonserver:24.12-py3") :]
    assert tail[1:] == [
        "tritonserver",
        *TRITON_FLAGS[:8],
        # --forward-sensitive-headers adds those names to Triton's pattern (else Triton drops them first).
        "--http-header-forward-pattern=(?:^x-(tenant|id)$)|^(?:authorization|proxy-authorization|cookie|host|content-length)$",
        "--grpc-header-forward-pattern=(?:^x-(tenant|id)$)|^(?:authorization|proxy-authorization|cookie|host|content-length)$",
        *TRITON_FLAGS[10:],
        "--log-verbose=1",
        "--log-info=true",
    ]
    needs = gpu_needs(gpu_repo)  # built with --gpus 1
    assert gpu_args(DockerOptions(), needs) == ["--gpus", "all"]
    assert gpu_args(DockerOptions(gpus="all"), needs) == ["--gpus", "all"]
    assert gpu_args(DockerOptions(gpus=[2, 3]), needs) == ["--gpus", '"device=2,3"']
    with pytest.raises(ServeError, match="--gpus 3 gives the container 1 GPU"):
        gpu_args(DockerOptions(gpus=[3]), needs)
    assert gpu_args(DockerOptions(), {}) == []


def test_same_server_flags_as_the_local_launcher(repo, monkeypatch):
    """The local launcher's tritonserver flags = the container's, but for addresses, ports and local-only flags."""
    from tritonize.server import local_launcher as local
    from tritonize.server import managed_triton

    seen = {}

    class Recorded(Exception):
        pass

    def fake_popen(args, **kwargs):
        seen["args"] = args
        raise Recorded()

    monkeypatch.setattr(managed_triton.subprocess, "Popen", fake_popen)
    http, grpc, metrics = free_ports(3)
    options = ServerOptions(repo, http_port=http, grpc_port=grpc, metrics_port=metrics)
    server = local.LocalTritonServer(options)
    with pytest.raises(Recorded):
        server.start()
    shutil.rmtree(server.workdir)
    # Explicit model control is the local launcher's own (its watchdog reloads crashed APIs).
    local_flags = [
        a
        for a in seen["args"][1:]
        if not a.startswith(("--backend-directory=", "--backend-config=")) and a not in model_control_args(options)
    ]
    docker_args = docker_run_args(options, DockerOptions(), {}, "tz")
    docker_flags = docker_args[docker_args.index("tritonserver") + 1 :]

    def normalise(flags):
        return [f.split("=")[0] if f.split("=")[0].endswith(("-address", "-port", "-repository")) else f for f in flags]

    assert normalise(local_flags) == normalise(docker_flags)
    assert {"--backend-directory", "--backend-config"} & {a.split("=")[0] for a in docker_flags} == set()


def test_shm_size_parsing():
    assert size_in_bytes("1g") == size_in_bytes("1024m") == size_in_bytes("1GB") == 1 << 30
    assert size_in_bytes("64m") == 64 << 20 and size_in_bytes("4096") == 4096
    with pytest.raises(ServeError, match="not a size"):
        size_in_bytes("lots")


def test_serve_docker_runs_streams_and_stops_the_container(repo, fake_docker):
    serve = ServeProcess(repo, extra_args=["--docker", "--admin-token", "T0K"])
    try:
        assert serve.wait_ready(timeout=60), serve.output()
        deadline = time.monotonic() + 30
        while "Ready in" not in serve.output() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        assert serve.stop() == 0, serve.output()
    with open(serve.log_path) as f:
        output = f.read()
    assert "Starting Triton in Docker (nvcr.io/nvidia/tritonserver:24.10-py3)" in output
    assert "Ready in" in output and "Stopping Triton" in output
    assert "fake tritonserver stopping" in output  # the container's log, streamed
    name = f"tritonize-repo-{serve.http_port}"
    calls = fake_docker()
    run = calls[1]["argv"]
    # The run's own id and label: serve acts on that container only, never on one found by name.
    cidfile, label = run.pop(6), run.pop(7)
    assert run[5:7] == ["--cidfile", "--label"] and label.startswith("io.tritonize.serve-run=")
    del run[5:7]
    assert not os.path.exists(cidfile)  # removed with serve's work folder
    assert [c["argv"] for c in calls] == [
        ["info", "--format", "{{.ServerVersion}}"],
        [
            "run",
            "--rm",
            "--init",
            "--name",
            name,
            "--shm-size",
            "1g",
            "-p",
            f"127.0.0.1:{serve.http_port}:8000",
            "-p",
            f"127.0.0.1:{serve.grpc_port}:8001",
            "-p",
            f"127.0.0.1:{serve.metrics_port}:8002",
            "-v",
            f"{repo}:/models:ro",
            "-e",
            "TRITONIZE_CORTEX_PORT=off",
            "-e",
            "TRITONIZE_DRAIN_NOTICE_S=0",
            "-e",
            "TRITONIZE_FORWARD_SENSITIVE_HEADERS=0",
            "-e",
            "TRITONIZE_HEADER_PATTERN=^x-",
            DEFAULT_IMAGE,
            "tritonserver",
            *TRITON_FLAGS,
            *RESTRICTED_FLAGS,
        ],
        ["stop", "--time", "10", f"cid-{name}"],
    ]
    run_env = calls[1]["env"]
    # The docker client gets the user's environment: the runtime settings travel as -e, and
    # nothing of the local launcher's (its LD_LIBRARY_PATH, status dir) leaks in.
    assert run_env["PATH"] == os.environ["PATH"]
    assert run_env.get("LD_LIBRARY_PATH") == os.environ.get("LD_LIBRARY_PATH")
    assert {"TRITONIZE_HEADER_PATTERN", "TRITONIZE_FORWARD_SENSITIVE_HEADERS", "TRITONIZE_STATUS_DIR"} & set(
        run_env
    ) == set()
    assert {k: v for k, v in run_env.items() if k.startswith("TRITONIZE_")} == {
        k: v for k, v in os.environ.items() if k.startswith("TRITONIZE_")
    }


def test_serve_docker_detach_leaves_the_container_running(repo, fake_docker):
    http, grpc, metrics = free_ports(3)
    result = run_tritonize(
        "serve",
        repo,
        "--docker",
        "--detach",
        "--name",
        "tz-bg",
        "--shm-size",
        "2g",
        "--image",
        "nvcr.io/nvidia/tritonserver:24.12-py3",
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
        "--admin-token",
        "T0K",
    )
    try:
        assert "docker stop tz-bg" in result.stderr and "docker logs --follow tz-bg" in result.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=5) as response:
            assert response.status == 200  # still serving after `tritonize serve` returned
        argvs = [c["argv"] for c in fake_docker()]
        assert argvs[0][0] == "info"
        # Then `docker logs --follow` streams startup; tritonize may end it before it gets to record itself.
        assert argvs[2:] in ([], [["logs", "--follow", "cid-tz-bg"]])
        run = argvs[1]
        assert run[:5] == ["run", "--rm", "--init", "--name", "tz-bg"]
        assert run[5] == "--cidfile" and run[7] == "--label" and run[9:12] == ["--detach", "--shm-size", "2g"]
        assert run[run.index("nvcr.io/nvidia/tritonserver:24.12-py3") + 1 :] == [
            "tritonserver",
            *TRITON_FLAGS,
            *RESTRICTED_FLAGS,
        ]
    finally:
        os.system(f"{os.path.join(FAKE_DOCKER_DIR, 'docker')} stop tz-bg > /dev/null")


def test_container_that_fails_to_start_is_reported(repo, fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_RUN", "fail")
    http, grpc, metrics = free_ports(3)
    result = run_tritonize(
        "serve",
        repo,
        "--docker",
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
        check=False,
    )
    assert result.returncode == 1
    assert "error: container tritonize-repo-" in result.stderr and "stopped (exit code 1)" in result.stderr
    assert "failed to load all models" in result.stderr


@pytest.mark.parametrize(
    "setup, args, words",
    [
        ("daemon_down", [], "cannot reach the Docker daemon: Cannot connect to the Docker daemon"),
        ("no_docker", [], "`docker` was not found on PATH"),
        ("fake", ["--shm-size", "64m"], "--shm-size 64m is too small"),
        ("fake", ["--cpu"], "--cpu applies to the local server"),
    ],
)
def test_docker_errors_are_clear_and_nothing_runs(repo, fake_docker, monkeypatch, tmp_path, setup, args, words):
    if setup == "daemon_down":
        monkeypatch.setenv("FAKE_DOCKER_DAEMON", "down")
    if setup == "no_docker":
        monkeypatch.setenv("PATH", str(tmp_path))  # the CLI runs as sys.executable: PATH needs nothing
    http, grpc, metrics = free_ports(3)
    result = run_tritonize(
        "serve",
        repo,
        "--docker",
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
        *args,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert words in result.stderr
    assert [c for c in fake_docker() if c["argv"][0] == "run"] == []


def test_docker_flags_need_docker(repo):
    result = run_tritonize("serve", repo, "--image", "x", check=False)
    assert result.returncode == 2 and "--image applies to the Docker launcher: add --docker" in result.stderr


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU error; this machine has a GPU")
def test_gpu_models_need_gpus_for_docker_too(gpu_repo, fake_docker):
    http, grpc, metrics = free_ports(3)
    ports = ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    result = run_tritonize("serve", gpu_repo, "--docker", *ports, check=False)
    assert result.returncode == 1 and "this machine has no NVIDIA GPU" in result.stderr
    assert fake_docker() == []


def test_every_launcher_implements_the_interface():
    """The abstract Launcher refuses a launcher that lacks a method (the Docker one once had no kill())."""
    from tritonize.server.docker_launcher import DockerTritonServer
    from tritonize.server.launcher import Launcher
    from tritonize.server.local_launcher import LocalTritonServer

    assert not LocalTritonServer.__abstractmethods__ and not DockerTritonServer.__abstractmethods__

    class Partial(Launcher):
        http_url = "http://127.0.0.1:1"

        def start(self): ...

        def wait_ready(self, timeout=300.0, on_wait=None): ...

        def stop(self): ...

        def failure_report(self): ...

    with pytest.raises(TypeError, match="kill"):
        Partial()


def test_docker_kill_during_stop_kills_the_container(repo, fake_docker):
    """A second Ctrl-C while `docker stop` waits: kill() kills the container instead of raising."""
    from tritonize.server.docker_launcher import DockerTritonServer

    http, grpc, metrics = free_ports(3)
    server = DockerTritonServer(
        ServerOptions(repo, http_port=http, grpc_port=grpc, metrics_port=metrics), DockerOptions(name="tz-kill")
    )
    server.start()
    try:
        server.wait_ready(timeout=30)
        server.kill()
        assert server.process.wait(timeout=30) is not None
        assert [c["argv"] for c in fake_docker() if c["argv"][0] == "kill"]  # by name or container id
    finally:
        server.stop()


def test_a_name_conflict_leaves_the_other_container_alone(repo, fake_docker):
    http, grpc, metrics = free_ports(3)
    ports = ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    other = free_ports(3)
    other_ports = ["--http-port", str(other[0]), "--grpc-port", str(other[1]), "--metrics-port", str(other[2])]
    run_tritonize("serve", repo, "--docker", "--detach", "--name", "tz-taken", *other_ports)
    try:
        result = run_tritonize("serve", repo, "--docker", "--name", "tz-taken", *ports, check=False)
        assert result.returncode == 1
        assert "a container named tz-taken already exists" in result.stderr, result.stderr
        after = [c["argv"] for c in fake_docker()][2:]
        assert not [argv for argv in after if argv[0] in ("stop", "rm", "kill")], after
        with urllib.request.urlopen(f"http://127.0.0.1:{other[0]}/v2/health/ready", timeout=5) as response:
            assert response.status == 200  # the other container still serves
    finally:
        os.system(f"{os.path.join(FAKE_DOCKER_DIR, 'docker')} stop tz-taken > /dev/null")


def test_sigkill_of_serve_does_not_orphan_the_container(repo, fake_docker):
    serve = ServeProcess(repo, extra_args=["--docker", "--name", "tz-orphan"])
    assert serve.wait_ready(timeout=60), serve.output()
    serve.process.kill()
    serve.process.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ["stop", "--time", "10", "cid-tz-orphan"] in [c["argv"] for c in fake_docker()]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the container was not stopped: {fake_docker()}")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{serve.http_url}/v2/health/ready", timeout=2)
