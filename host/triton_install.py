"""Find the tritonserver that ships in the nvidia-pytriton wheel and prepare its backend dir."""

import importlib.util
import os
import sys
import sysconfig

from tritonize.errors import ServeError

INSTALL_HINT = "install it with: pip install 'tritonize[server]'  (or: pip install nvidia-pytriton==0.7.0)"


class TritonInstall:
    """Paths inside the installed nvidia-pytriton wheel."""

    def __init__(self, root, libs_dir):
        self.root = root
        self.binary = os.path.join(root, "bin", "tritonserver")
        self.python_backend = os.path.join(root, "backends", "python")
        self.libs_dir = libs_dir

    def stub_for(self, version=None):
        version = version or f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = os.path.join(self.root, "python_backend_stubs", version, "triton_python_backend_stub")
        if not os.path.isfile(stub):
            raise ServeError(f"nvidia-pytriton has no python backend stub for Python {version} ({stub} is missing)")
        return stub

    def make_backend_dir(self, dest):
        """dest/python = the wheel's python backend + the stub for this Python."""
        python_dir = os.path.join(dest, "python")
        os.makedirs(python_dir, exist_ok=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            os.symlink(os.path.join(self.python_backend, name), os.path.join(python_dir, name))
        os.symlink(self.stub_for(), os.path.join(python_dir, "triton_python_backend_stub"))
        return dest

    def environment(self, base=None):
        """Environment for tritonserver so every stub runs this Python with these packages."""
        env = dict(os.environ if base is None else base)
        # The stub finds its sys.prefix from the first python3 on PATH: make it ours (venv included).
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        # The stub links libpython3.X.so dynamically; the running interpreter's copy must win over
        # the system's, or the stub mixes another patch release's runtime with our stdlib.
        lib_dirs = [sysconfig.get_config_var("LIBDIR") or "", self.libs_dir, env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(d for d in lib_dirs if d)
        return env


def find_triton():
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServeError(f"tritonserver not found: the nvidia-pytriton package is not installed; {INSTALL_HINT}")
    package_dir = list(spec.submodule_search_locations)[0]
    install = TritonInstall(
        os.path.join(package_dir, "tritonserver"),
        os.path.join(os.path.dirname(package_dir), "nvidia_pytriton.libs"),
    )
    if not os.access(install.binary, os.X_OK):
        raise ServeError(f"{install.binary} is missing or not executable; {INSTALL_HINT}")
    return install
