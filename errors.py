"""tritonize's typed errors; the CLI prints their message and exits non-zero."""


class TritonizeError(Exception):
    """Base of every error tritonize reports to the user (no traceback shown)."""

    exit_code = 1


class SpecError(TritonizeError):
    """The API spec (cortex.yaml or command-line settings) is invalid."""

    exit_code = 2


class PredictorSourceError(TritonizeError):
    """The predictor file cannot serve: syntax error, missing class, bad signature."""

    exit_code = 2


class BuildError(TritonizeError):
    """Writing the model repository failed."""


class ServeError(TritonizeError):
    """Triton could not be started or a model failed to load."""
