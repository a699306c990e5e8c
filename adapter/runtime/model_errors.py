"""The exceptions python_client raises, shaped like Cortex v0.33's (cortex_internal.lib.exceptions).

A predictor that catches them can answer 404/400 itself; uncaught, they are a 500 like any
other exception in predict().
"""

from collections import deque


class CortexException(Exception):
    def __init__(self, *messages):
        super().__init__(": ".join(messages))
        self.errors = deque(messages)

    def __str__(self):
        return "error: " + ": ".join(self.errors)

    __repr__ = __str__


class UserException(CortexException):
    pass


class UserRuntimeException(UserException):
    def __init__(self, *messages):
        super().__init__(*messages, "runtime exception")


class ModelNotFound(UserRuntimeException, LookupError):
    """No such model name or version (also a LookupError, for predictors that catch that)."""


class ModelLoadError(UserRuntimeException):
    """load_model() raised, or the model's files could not be fetched."""
