"""Pin each Triton instance process to its device before the predictor is imported.

Triton's python backend starts one process per instance, and every one of them
sees every GPU. Cortex predictors pick their device themselves
(`device = 0 if torch.cuda.is_available() else -1`), so the process must only
see its own GPU, through CUDA_VISIBLE_DEVICES, before torch initialises CUDA.
A CPU instance sees no GPU, as a Cortex API without `compute.gpu` had none.
"""

import logging
import os
import sys

from .constants import DEVICE_ENV, GPU_ID_ENV

log = logging.getLogger("tritonize")

VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"


def _kind(value):
    kind = str(value or "").upper()
    return kind[len("KIND_") :] if kind.startswith("KIND_") else kind


def device_environment(kind, device_id, environ):
    """Triton's model_instance_kind / model_instance_device_id -> (env changes, device).

    `device_id` counts GPUs as tritonserver sees them: if tritonserver itself runs
    with CUDA_VISIBLE_DEVICES=2,3, device 1 is physical GPU 3.
    Other kinds (MODEL, AUTO; tritonize never writes them) change nothing: ({}, None).
    """
    kind = _kind(kind)
    if kind == "GPU":
        try:
            index = int(device_id)
        except (TypeError, ValueError):
            raise ValueError(f"GPU instance with an unreadable device id {device_id!r}") from None
        visible = environ.get(VISIBLE_ENV)
        if visible is not None and visible.strip():
            ids = [item.strip() for item in visible.split(",") if item.strip()]
            if index >= len(ids):
                raise ValueError(f"GPU instance on device {index}, but {VISIBLE_ENV}={visible!r} lists {len(ids)}")
            physical = ids[index]
        else:
            physical = str(index)
        return {VISIBLE_ENV: physical, DEVICE_ENV: "cuda:0", GPU_ID_ENV: str(index)}, "cuda:0"
    if kind == "CPU":
        return {VISIBLE_ENV: "", DEVICE_ENV: "cpu"}, "cpu"
    return {}, None


def pin_device(args, environ=None):
    """Apply device_environment to this process (call before importing user code); return the device."""
    environ = os.environ if environ is None else environ
    changes, device = device_environment(args.get("model_instance_kind"), args.get("model_instance_device_id"), environ)
    if changes and "torch" in sys.modules:
        log.warning(
            "torch was imported before the instance was pinned to %s; %s may not take effect", device, VISIBLE_ENV
        )
    if GPU_ID_ENV not in changes:
        environ.pop(GPU_ID_ENV, None)  # a CPU instance must not inherit a GPU id
    environ.update(changes)
    return device


def device_config(settings, device):
    """config["device"] for the predictor, unless its own config already has that key."""
    config = settings.predictor.config
    if device is None or "device" in config:
        return None
    return {"device": device}
