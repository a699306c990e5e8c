"""Before Triton starts: which models want GPUs, does this machine have them, and `serve --cpu`.

Triton itself answers a KIND_GPU model on a machine without GPUs with
"kind KIND_GPU but no GPUs are available" deep in its log; tritonize checks
first and says what to do. No torch import: /proc and `nvidia-smi -L` only.
"""

import os
import shutil
import subprocess

from tritonclient.grpc.model_config_pb2 import ModelInstanceGroup

from tritonize.adapter.built_repository import read_built_repository
from tritonize.adapter.model_config import to_config_json, to_pbtxt
from tritonize.adapter.runtime.constants import BATCH_CONFIG_FILE
from tritonize.adapter.runtime.repository_model import CONFIG_FILE, write_batch_model_config
from tritonize.errors import ServeError

PROC_GPUS = "/proc/driver/nvidia/gpus"


def detect_gpu_count(proc_dir=PROC_GPUS, nvidia_smi="nvidia-smi", environ=None):
    """NVIDIA GPUs a process started from here would see (CUDA_VISIBLE_DEVICES honoured)."""
    environ = os.environ if environ is None else environ
    count = len(os.listdir(proc_dir)) if os.path.isdir(proc_dir) else 0
    if not count:
        smi = shutil.which(nvidia_smi)
        if smi:
            try:
                result = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
                count = sum(1 for line in result.stdout.splitlines() if line.startswith("GPU "))
            except (OSError, subprocess.SubprocessError):
                count = 0
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = min(count, len([item for item in visible.split(",") if item.strip()]))
    return count


def gpu_needs(repository):
    """{model: sorted GPU ids it lists, or None for 'every GPU'} for models with KIND_GPU instances."""
    return read_built_repository(repository).gpu_needs()


def _describe(needs):
    return ", ".join(
        f"{name} (every GPU)" if gpus is None else f"{name} (GPU {', '.join(map(str, gpus))})"
        for name, gpus in sorted(needs.items())
    )


def check_gpus(needs, gpu_count, repository, cpu_flag="--cpu"):
    """Raise ServeError with the fix if the GPU models cannot run on gpu_count GPUs."""
    if not needs:
        return
    fix = (
        f"to try it on this machine, serve it on CPU instances: tritonize serve {repository} {cpu_flag}\n"
        "  or rebuild it for CPU: tritonize build ... --kind cpu"
    ).rstrip()
    if gpu_count == 0:
        raise ServeError(
            f"{repository} was built for GPUs, but this machine has no NVIDIA GPU "
            f"(nothing in {PROC_GPUS}, no GPU from nvidia-smi -L, or CUDA_VISIBLE_DEVICES hides them).\n"
            f"  models with GPU instances: {_describe(needs)}\n  {fix}"
        )
    too_high = {name: gpus for name, gpus in needs.items() if gpus and max(gpus) >= gpu_count}
    if too_high:
        raise ServeError(
            f"{_describe(too_high)}: asks for a GPU this machine does not have "
            f"(it has {gpu_count}: {', '.join(map(str, range(gpu_count)))}).\n"
            f"  rebuild with --gpus listing GPUs from 0 to {gpu_count - 1}, or {fix}"
        )


def cpu_config(config):
    """A copy of config with every KIND_GPU group turned into CPU instances (same process count)."""
    config = type(config).FromString(config.SerializeToString())
    for group in config.instance_group:
        if group.kind == ModelInstanceGroup.KIND_GPU:
            group.count = max(group.count, 1) * max(len(group.gpus), 1)
            group.kind = ModelInstanceGroup.KIND_CPU
            del group.gpus[:]
    return config


def write_cpu_repository(repository, dest):
    """dest = repository with GPU instance groups on CPU: rewritten configs, everything else symlinked.

    Returns {model: GPU needs} for the models that changed.
    """
    built = read_built_repository(repository)
    gpu_models = {model.name: model for model in built.models if model.uses_gpus}
    os.makedirs(dest, exist_ok=True)
    for entry in sorted(os.listdir(repository)):
        source = os.path.join(repository, entry)
        if entry not in gpu_models:
            os.symlink(source, os.path.join(dest, entry))
            continue
        os.makedirs(os.path.join(dest, entry))
        for item in sorted(os.listdir(source)):
            if item not in (CONFIG_FILE, BATCH_CONFIG_FILE):
                os.symlink(os.path.join(source, item), os.path.join(dest, entry, item))
        config = cpu_config(gpu_models[entry].config)
        with open(os.path.join(dest, entry, CONFIG_FILE), "w", encoding="utf-8") as f:
            f.write(to_pbtxt(config))
        if os.path.isfile(os.path.join(source, BATCH_CONFIG_FILE)):  # what a job loads a BatchAPI with
            write_batch_model_config(os.path.join(dest, entry), to_config_json(config))
    return built.gpu_needs()
