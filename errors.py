"""tritonize's errors, one hierarchy: the CLI prints the message (no traceback) and exits with `exit_code`."""


class TritonizeError(Exception):
    """Base of every error tritonize reports to the user."""

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


class StatusCarrying(TritonizeError):
    """An error answer from a server, with its HTTP-style status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"[{status}] {message}")
        self.status = status
        self.message = message


class AdminError(StatusCarrying):
    """A Triton admin call (model repository, statistics) failed."""


class PredictError(StatusCarrying):
    """A non-2xx answer to a prediction; `status` is HTTP-style (also for gRPC)."""


class ServerUnreachable(TritonizeError):
    """No server answered at the address (refused, reset, timed out)."""

    def __init__(self, url: str, protocol: str, cause: object, what: str = "Triton") -> None:
        super().__init__(f"cannot reach {what} at {url} over {protocol}: {cause}")


class StatusError(TritonizeError):
    """`tritonize status` could not read a server."""


class BenchError(TritonizeError):
    """`tritonize bench` cannot run the load."""


class DeployError(TritonizeError):
    """`tritonize deploy` cannot write the manifests."""


class RepositoryError(TritonizeError):
    """A model repository tritonize cannot read: missing, not built by tritonize, or by another version of it."""


class JobError(StatusCarrying):
    """The Cortex endpoint refused a batch-job call (its `{"error": ...}`); `status` is the HTTP status."""
