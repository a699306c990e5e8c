"""tritonize: run Cortex-style Python predictors, unchanged, on NVIDIA Triton."""

__version__ = "0.1.0"


def __getattr__(name):
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
