"""Pure helpers of model_repository_template/model.py (imported with a placeholder for Triton's
utils module, which only exists inside the stub; nothing here calls it)."""

import importlib.util
import os
import sys
import types

import numpy as np
import pytest

TEMPLATE = os.path.join(os.path.dirname(__file__), os.pardir, "model_repository_template", "model.py")


@pytest.fixture(scope="module")
def model():
    added = "triton_python_backend_utils" not in sys.modules
    if added:
        sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")
    try:
        spec = importlib.util.spec_from_file_location("tritonize_model_template", TEMPLATE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if added:
            del sys.modules["triton_python_backend_utils"]
    return module


@pytest.mark.parametrize(
    "array",
    [
        np.array([[b"a"], [b"bc\x00d"], [b""]]),  # bytes ('S')
        np.array([["plain"], ["ascii"]]),  # ASCII str ('U'): numpy encodes it
        np.array([["café", "naïve"], ["日本", "x"]]),  # non-ASCII str: encoded one by one
        np.array([], dtype="U3").reshape(0, 1),
    ],
)
def test_bytes_outputs_become_object_arrays_of_utf8_bytes(model, array):
    out = model._bytes_as_object(array)
    assert out.dtype == np.object_ and out.shape == array.shape
    expected = [v.encode("utf-8") if isinstance(v, str) else v for v in array.reshape(-1).tolist()]
    assert out.reshape(-1).tolist() == expected
    assert all(type(v) is bytes for v in out.reshape(-1))


def test_numeric_outputs_pass_through(model):
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert model._bytes_as_object(array) is array
