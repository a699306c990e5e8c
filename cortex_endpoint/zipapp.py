"""The Cortex endpoint as one file, for images: `python3 tritonize_cortex_endpoint.pyz --repository /models ...`.

`tritonize docker build` writes it at the repository's top level (Triton only loads folders, so a
file there is ignored) and the image runs it beside tritonserver; `deploy k8s` runs it as a sidecar.

What it holds is computed, never listed by hand: the import closure of its entry modules (every
`tritonize.*` module their imports reach, read with `ast`, nothing imported), which must need
nothing beyond the standard library and the packages the image installs (IMAGE_PACKAGES).
"""

import ast
import os
import sys
import zipfile

from tritonize.adapter.runtime.constants import DEFAULT_PORTS
from tritonize.errors import BuildError

ZIPAPP_NAME = "tritonize_cortex_endpoint.pyz"
# Where images have it: the model repository is /models there (server/docker_launcher.py's CONTAINER_REPOSITORY).
ZIPAPP_PATH = f"/models/{ZIPAPP_NAME}"
# The modules whose closure the zipapp holds; the first is what `python3 tritonize_cortex_endpoint.pyz` runs (its
# main()); the second is the image's entrypoint, tritonize's supervisor around tritonserver (docs/production.md).
ENTRY_MODULES = ("tritonize.cortex_endpoint.__main__", "tritonize.server.container")
# What the image installs beside the zipapp (pip requirement -> the top-level modules the zipapp imports
# from it); STREAMING_PACKAGES only when the repository has a streaming API (Triton's gRPC stream).
IMAGE_PACKAGES = {"httptools>=0.6": ("httptools",), "uvloop>=0.19": ("uvloop",)}
STREAMING_PACKAGES = {"tritonclient[grpc]==2.51.0": ("tritonclient", "grpc")}
# BATCH_PACKAGES only when the repository has a BatchAPI: S3 job sources and dead letters (imported lazily).
BATCH_PACKAGES = {"boto3>=1.28": ("boto3", "botocore")}
_PACKAGE = "tritonize"
_DATE = (2020, 1, 1, 0, 0, 0)  # fixed: same sources, same bytes


def _source_root():
    """The folder of the tritonize package (this file is <it>/cortex_endpoint/zipapp.py)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_path(name, root=None):
    """tritonize.a.b -> <root>/a/b.py or <root>/a/b/__init__.py; None if neither exists."""
    base = os.path.join(root or _source_root(), *name.split(".")[1:])
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


class _Imports(ast.NodeVisitor):
    """The modules a source imports: at module level only, or also inside functions (lazy imports)."""

    def __init__(self, module, is_package, nested):
        self.package = module if is_package else module.rpartition(".")[0]
        self.nested = nested
        self.found = []  # (module name, line)

    def visit_FunctionDef(self, node):
        if self.nested:
            self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node):
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.orelse:  # type checkers' imports never run
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node):
        self.found += [(alias.name, node.lineno) for alias in node.names]

    def visit_ImportFrom(self, node):
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module
        self.found.append((base, node.lineno))
        # `from package import name`: name may be a submodule.
        self.found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*"]


def import_closure(entries=ENTRY_MODULES, root=None):
    """-> ({tritonize module: its file}, {other top-level module: ["file:line", ...]}) reached from `entries`.

    A module reached by an import contributes all of its imports, lazy ones inside functions
    included (they run when called). A package reached only as the parent of a module runs its
    module-level code alone: its lazy imports (tritonize/__init__.py's Client) are not followed.
    """
    root = root or _source_root()
    modules, others = {}, {}
    todo = [(name, True) for name in entries]
    followed = set()
    while todo:
        name, nested = todo.pop()
        if (name, nested) in followed or (not nested and (name, True) in followed):
            continue
        followed.add((name, nested))
        path = module_path(name, root)
        if path is None:
            raise BuildError(f"internal error: the zipapp's closure reaches {name}, which has no source file")
        modules[name] = path
        parts = name.split(".")
        todo += [(".".join(parts[:i]), False) for i in range(1, len(parts))]
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        visitor = _Imports(name, path.endswith("__init__.py"), nested)
        visitor.visit(tree)
        for imported, line in visitor.found:
            top = imported.split(".")[0]
            if top == _PACKAGE:
                if module_path(imported, root) is not None:
                    todo.append((imported, True))
            elif top not in sys.stdlib_module_names and top != "__future__":
                where = f"{os.path.relpath(path, root)}:{line}"
                if where not in others.setdefault(top, []):
                    others[top].append(where)
    return modules, others


def image_modules():
    """The top-level modules the image provides beyond the standard library."""
    packages = (*IMAGE_PACKAGES.values(), *STREAMING_PACKAGES.values(), *BATCH_PACKAGES.values())
    return {top for tops in packages for top in tops}


def check_closure(others, allowed=None):
    """BuildError if the closure imports a module that neither the standard library nor the image provides."""
    allowed = image_modules() if allowed is None else allowed
    missing = {top: where for top, where in others.items() if top not in allowed}
    if missing:
        raise BuildError(
            "internal error: the Cortex endpoint's zipapp would import what the image does not install: "
            + "; ".join(f"{top} (from {', '.join(where)})" for top, where in sorted(missing.items()))
        )


def write_zipapp(directory, entries=ENTRY_MODULES):
    """Write <directory>/tritonize_cortex_endpoint.pyz (deterministic: same sources, same bytes); -> its path.

    `python3 <it>` runs main() of entries[0].
    """
    root = _source_root()
    modules, others = import_closure(entries, root)
    check_closure(others)
    path = os.path.join(directory, ZIPAPP_NAME)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted(modules.values()):
            inside = os.path.join(_PACKAGE, os.path.relpath(source, root)).replace(os.sep, "/")
            with open(source, "rb") as f:
                archive.writestr(zipfile.ZipInfo(inside, _DATE), f.read())
        main = f"from {entries[0]} import main\n\nraise SystemExit(main())\n"
        archive.writestr(zipfile.ZipInfo("__main__.py", _DATE), main)
    return path


def container_command(port, max_body_bytes, parent_pid=None):
    """The front's command line in an image: the entrypoint (beside tritonserver) or a Kubernetes sidecar."""
    command = [
        "python3",
        ZIPAPP_PATH,
        "--repository",
        os.path.dirname(ZIPAPP_PATH),
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
