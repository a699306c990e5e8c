"""tritonize: run Cortex-style Python predictors, unchanged, on NVIDIA Triton."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import tritonize` stays cheap and tritonclient loads only when used.
    if name in ("Client", "PredictError"):
        from tritonize.client import client

        return getattr(client, name)
    raise AttributeError(f"module 'tritonize' has no attribute {name!r}")
