"""tritonize: run Cortex-style Python predictors, unchanged, on NVIDIA Triton."""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # visible to type checkers; imported lazily at run time (below)
    from tritonize.client.client import Client
    from tritonize.errors import PredictError

__all__ = ["Client", "PredictError", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import tritonize` stays cheap and tritonclient loads only when used.
    if name == "Client":
        from tritonize.client.client import Client

        return Client
    if name == "PredictError":
        from tritonize.errors import PredictError

        return PredictError
    if name == "build_from_spec":  # Cortex's Python client specs (cortex_client.py)
        from tritonize.cortex_client import build_from_spec

        return build_from_spec
    raise AttributeError(f"module 'tritonize' has no attribute {name!r}")
