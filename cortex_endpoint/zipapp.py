"""The Cortex endpoint as one file, for images: `python3 tritonize_front.pyz --repository /models ...`.

`tritonize docker build` writes it at the repository's top level (Triton only loads folders, so a
file there is ignored) and the image runs it beside tritonserver; `deploy k8s` runs it as a sidecar.
It holds cortex_endpoint/ and the few tritonize modules it imports (stdlib only); httptools and uvloop are
installed in the image by pip.
"""

import os
import zipfile

import tritonize
from tritonize.adapter.runtime.constants import DEFAULT_PORTS

ZIPAPP_NAME = "tritonize_front.pyz"
# Where images have it: the model repository is /models there (server/docker_launcher.py's CONTAINER_REPOSITORY).
FRONT_PATH = f"/models/{ZIPAPP_NAME}"
# Packages the front imports, relative to the tritonize package (each with its __init__.py).
_MODULES = [
    "__init__.py",
    "errors.py",
    "adapter/__init__.py",
    "adapter/runtime/__init__.py",
    "adapter/runtime/constants.py",
    "adapter/runtime/stream_errors.py",
    "adapter/runtime/request_timeout.py",
    # The image's supervisor (server/container.py, the entrypoint) and the health rules it runs.
    "adapter/runtime/datastructures.py",
    "adapter/runtime/errors.py",
    "adapter/runtime/failure_log.py",
    "adapter/runtime/params.py",
    "client/__init__.py",
    "client/local_http.py",
    "health/__init__.py",
    "health/liveness.py",
    "health/prometheus.py",
    "health/stubs.py",
    "health/stuck.py",
    "server/__init__.py",
    "server/admin.py",
    "server/argv.py",
    "server/container.py",
    "server/launcher.py",
    "server/managed_triton.py",
    "server/options.py",
    "server/supervisor.py",
    "server/watchdog.py",
]
_MAIN = "from tritonize.cortex_endpoint.__main__ import main\n\nraise SystemExit(main())\n"


def write_zipapp(directory):
    """Write <directory>/tritonize_front.pyz (deterministic: same sources, same bytes); -> its path."""
    root = os.path.dirname(os.path.abspath(tritonize.__file__))
    front = os.path.join(root, "cortex_endpoint")
    names = _MODULES + [f"cortex_endpoint/{n}" for n in sorted(os.listdir(front)) if n.endswith(".py")]
    path = os.path.join(directory, ZIPAPP_NAME)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                archive.writestr(zipfile.ZipInfo(f"tritonize/{name}", (2020, 1, 1, 0, 0, 0)), f.read())
        archive.writestr(zipfile.ZipInfo("__main__.py", (2020, 1, 1, 0, 0, 0)), _MAIN)
    return path


def container_command(port, max_body_bytes, parent_pid=None):
    """The front's command line in an image: the entrypoint (beside tritonserver) or a Kubernetes sidecar."""
    command = [
        "python3",
        FRONT_PATH,
        "--repository",
        os.path.dirname(FRONT_PATH),
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--triton-http-port",
        str(DEFAULT_PORTS["http"]),
        "--triton-grpc-port",
        str(DEFAULT_PORTS["grpc"]),
        "--max-body-bytes",
        str(max_body_bytes),
    ]
    return command + (["--parent-pid", parent_pid] if parent_pid else [])
