"""Find a working perf_analyzer: the one tritonclient[all]==2.51 installs, with its libraries.

The pip `perf-analyzer` wheels need glibc 2.38; tritonclient 2.51's binary runs on
older systems but needs libb64.so.0d and libcudart.so.12, which the
nvidia-pytriton wheel carries under hashed names: link them under the plain names.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

from tritonize.errors import ServeError

NEEDED_LIBS = {"libb64.so.0d": "libb64-*.so.0d", "libcudart.so.12": "libcudart-*.so.12*"}


def perf_analyzer_binary():
    candidate = os.path.join(os.path.dirname(sys.executable), "perf_analyzer")
    found = candidate if os.access(candidate, os.X_OK) else shutil.which("perf_analyzer")
    if not found:
        raise ServeError("perf_analyzer not found; it ships with: pip install 'tritonclient[all]==2.51.0'")
    return found


def admin_header_args(protocol):
    """-H for the admin token: perf_analyzer reads the server's statistics (a restricted API, see README
    "Operating it"); the token comes from TRITONIZE_ADMIN_TOKEN."""
    from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV, ADMIN_TOKEN_HEADER, GRPC_ADMIN_TOKEN_HEADER

    token = os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        return []
    return ["-H", f"{GRPC_ADMIN_TOKEN_HEADER if protocol == 'grpc' else ADMIN_TOKEN_HEADER}:{token}"]


# How long start() waits for perf_analyzer to connect (its flags parsed) before blanking the token.
_PARSE_WAIT_S = 10.0


def start(argv, env, **popen_args):
    """Popen(argv) with the admin token of admin_header_args() blanked from its command line (what `ps`
    shows every user) as soon as perf_analyzer has parsed it: when it opens its first socket. perf_analyzer
    takes headers only as flags; the token is visible for those few milliseconds."""
    from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV
    from tritonize.host.argv import hide_from_argv

    process = subprocess.Popen(argv, env=env, **popen_args)
    token = os.environ.get(ADMIN_TOKEN_ENV)
    if token and any(token in arg for arg in argv):
        deadline = time.monotonic() + _PARSE_WAIT_S
        while process.poll() is None and time.monotonic() < deadline and not _has_socket(process.pid):
            time.sleep(0.002)
        hide_from_argv(process.pid, token)
    return process


def _has_socket(pid):
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                return True
    except OSError:
        pass
    return False


def perf_analyzer_environment(lib_dir=None):
    """Environment with LD_LIBRARY_PATH pointing at links to the libraries perf_analyzer needs."""
    from tritonize.host.triton_install import find_triton

    libs = find_triton().libs_dir
    lib_dir = lib_dir or tempfile.mkdtemp(prefix="tritonize-pa-libs-")
    for plain, pattern in NEEDED_LIBS.items():
        matches = sorted(glob.glob(os.path.join(libs, pattern)))
        link = os.path.join(lib_dir, plain)
        if matches and not os.path.exists(link):
            os.symlink(matches[0], link)
    from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV

    env = {name: value for name, value in os.environ.items() if name != ADMIN_TOKEN_ENV}  # in -H only
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (lib_dir, env.get("LD_LIBRARY_PATH", "")) if p)
    # perf_analyzer's curl honours http_proxy: loopback must not go through it.
    for name in ("no_proxy", "NO_PROXY"):
        env[name] = ",".join(p for p in (env.get(name, ""), "127.0.0.1,localhost,::1") if p)
    return env
