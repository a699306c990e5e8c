"""The exec liveness probe of a pod whose image has no tritonize supervisor (a stock Triton image
reading the repository from object storage): health/liveness.py itself, run by `python3 -c`.

Every Triton image has python3 but not tritonize, so the command carries the health package's own
source files, verbatim, and loads them as a package (no copy of a rule, nothing filled in by string
replacement: tests import the same files). Images built by `tritonize docker build` need none of
this: their supervisor heals a dead instance and answers httpGet probes (server/container.py).
"""

from importlib import resources

# health/'s modules, in import order (each imports only the standard library and earlier ones).
HEALTH_MODULES = ("prometheus", "stubs", "stuck", "liveness")
_LOADER = """
import sys, types
package = types.ModuleType("tritonize_health")
package.__path__ = []
sys.modules[package.__name__] = package
for name in MODULES:
    module = types.ModuleType("tritonize_health." + name)
    module.__package__ = package.__name__
    sys.modules[module.__name__] = module
    exec(compile(SOURCES[name], "tritonize/health/%s.py" % name, "exec"), module.__dict__)
sys.exit(sys.modules["tritonize_health.liveness"].main(sys.argv[1:]))
"""


def standalone_program():
    """Python source that runs health/liveness.py's main() from the health modules' real sources."""
    health = resources.files("tritonize.health")
    sources = {name: health.joinpath(f"{name}.py").read_text(encoding="utf-8") for name in HEALTH_MODULES}
    return f"MODULES = {HEALTH_MODULES!r}\nSOURCES = {sources!r}\n{_LOADER}"


def liveness_command(http_port=8000, metrics_port=8002):
    return ["python3", "-c", standalone_program(), "--http-port", str(http_port), "--metrics-port", str(metrics_port)]
