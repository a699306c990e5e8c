"""predictor.multi_model_reloading (Cortex v0.25-v0.33; `predictor.models` in v0.22-v0.24).

Checked at build time with Cortex v0.33's rules; the result is the runtime's "models" settings
(runtime/python_client.py). Paths are s3://bucket/prefix or local folders (relative to the
project, or absolute).
"""

import os
import re

from tritonize.adapter.runtime.constants import DEFAULT_MODEL_POLL_INTERVAL_S, SINGLE_MODEL_NAME
from tritonize.adapter.runtime.model_storage import LocalStorage, is_s3, split_s3
from tritonize.adapter.runtime.model_tree import InvalidModel, split_versions
from tritonize.adapter.spec_values import check_keys, parse_duration
from tritonize.errors import SpecError

SECTION_KEYS = ("multi_model_reloading", "models")
MODELS_KEYS = {"path", "paths", "dir", "cache_size", "disk_cache_size", "signature_key"}
PATHS_ENTRY_KEYS = {"name", "path", "signature_key"}
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # Cortex: AlphaNumericDashUnderscore
MAX_INT32 = 2**31 - 1


POLL_INTERVAL_KEY = "model_poll_interval"  # in the API's `tritonize:` mapping


def parse_models(predictor, where, project_dir, processes_per_replica=1, poll_interval=None):
    """-> the runtime's models settings, or None when the predictor has no models section.

    poll_interval: seconds between looks for new model versions (0: never), None = Cortex's 10 s.
    """
    given = [key for key in SECTION_KEYS if predictor.get(key) is not None]
    if not given:
        return None
    if len(given) == 2:
        raise SpecError(
            f"{where}.models: give either multi_model_reloading or models (the older name "
            "of the same section), not both"
        )
    key = given[0]
    where = f"{where}.{key}"
    section = predictor[key]
    if not isinstance(section, dict):
        raise SpecError(f"{where}: expected a mapping with path, paths or dir")
    check_keys(section, MODELS_KEYS, where)
    if section.get("signature_key") is not None:
        raise SpecError(f"{where}.signature_key: not supported by the python predictor type")
    chosen = [k for k in ("path", "paths", "dir") if section.get(k) not in (None, [])]
    if len(chosen) != 1:
        detail = f" ({' and '.join(chosen)} are both given)" if chosen else ""
        raise SpecError(f"{where}: specify exactly one of path, paths or dir{detail}")
    settings = {
        "mode": chosen[0],
        "models": [],
        "dir": None,
        "poll_interval": DEFAULT_MODEL_POLL_INTERVAL_S if poll_interval is None else poll_interval,
    }
    if chosen[0] == "path":
        location = _location(section["path"], f"{where}.path", project_dir)
        _check_model(location, f"{where}.path")
        settings["models"].append({"name": SINGLE_MODEL_NAME, **location})
    elif chosen[0] == "paths":
        settings["models"] = _parse_paths(section["paths"], f"{where}.paths", project_dir)
    else:
        settings["dir"] = _location(section["dir"], f"{where}.dir", project_dir)
        _check_dir(settings["dir"], f"{where}.dir")
    settings.update(_parse_cache(section, where, processes_per_replica))
    return settings


def _parse_paths(entries, where, project_dir):
    if not isinstance(entries, list):
        raise SpecError(f"{where}: expected a list of {{name, path}}")
    models, seen = [], set()
    for i, entry in enumerate(entries):
        here = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise SpecError(f"{here}: expected a mapping with name and path")
        check_keys(entry, PATHS_ENTRY_KEYS, here)
        if entry.get("signature_key") is not None:
            raise SpecError(f"{here}.signature_key: not supported by the python predictor type")
        name = check_model_entry_name(entry.get("name"), f"{here}.name")
        if name == SINGLE_MODEL_NAME:
            raise SpecError(f"{here}.name: {name} is a reserved name; please specify a different model name")
        if name in seen:
            raise SpecError(f"{here}.name: cannot have multiple models with the same name ({name})")
        seen.add(name)
        location = _location(entry.get("path"), f"{here}.path", project_dir)
        _check_model(location, f"{here}.path")
        models.append({"name": name, **location})
    return models


def check_model_entry_name(name, where):
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise SpecError(f"{where}: required; letters, digits, '-' and '_' only, got {name!r}")
    return name


def check_cache_size(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_INT32:
        raise SpecError(f"{where}: expected a whole number greater than 0, got {value!r}")
    return value


def _location(value, where, project_dir):
    """-> {"path": s3 URL or absolute local path, "project_path": inside-project relative path or None}."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: required (an s3://bucket/prefix or a local folder)")
    value = value.strip()
    if is_s3(value):
        bucket, _ = split_s3(value)
        if not bucket:
            raise SpecError(f"{where}: {value!r} names no bucket (expected s3://bucket/prefix)")
        return {"path": value, "project_path": None}
    if "://" in value:
        raise SpecError(f"{where}: {value}: path must be an S3 path (e.g. s3://bucket/my-dir/) or a local folder")
    full = os.path.realpath(os.path.join(project_dir, os.path.expanduser(value)))
    inside = full == project_dir or full.startswith(project_dir + os.sep)
    if not os.path.isabs(os.path.expanduser(value)) and not inside:
        raise SpecError(
            f"{where}: {value!r} points outside the project directory {project_dir}; "
            "use an absolute path for a folder elsewhere"
        )
    if not os.path.isdir(full):
        raise SpecError(f"{where}: {value!r} is not a folder ({full})")
    relative = os.path.relpath(full, project_dir).replace(os.sep, "/") if inside else None
    return {"path": full, "project_path": relative}


def _check_model(location, where):
    if location["project_path"] is None and is_s3(location["path"]):
        return  # S3 is listed when the API starts (no credentials at build time)
    try:
        split_versions(LocalStorage().list(location["path"]))
    except InvalidModel as exc:
        raise SpecError(f"{where}: {location['path']}: invalid python model path: {exc}") from None


def _check_dir(location, where):
    if is_s3(location["path"]):
        return
    names = sorted(
        e
        for e in os.listdir(location["path"])
        if not e.startswith(".") and os.path.isdir(os.path.join(location["path"], e))
    )
    if not names:
        raise SpecError(f"{where}: {location['path']} holds no model folders")
    for name in names:
        if name == SINGLE_MODEL_NAME:
            raise SpecError(f"{where}: {name}: is a reserved name; please specify a different model name")
        _check_model({"path": os.path.join(location["path"], name), "project_path": ""}, f"{where} ({name})")


def _parse_cache(section, where, processes_per_replica):
    sizes = {}
    for key in ("cache_size", "disk_cache_size"):
        value = section.get(key)
        if value is None:
            continue
        sizes[key] = check_cache_size(value, f"{where}.{key}")
    if len(sizes) == 1:
        raise SpecError(f"{where}: please specify both cache_size and disk_cache_size or neither of them")
    if sizes:
        if sizes["cache_size"] > sizes["disk_cache_size"]:
            raise SpecError(
                f"{where}.cache_size: cache_size ({sizes['cache_size']}) cannot be greater than "
                f"disk_cache_size ({sizes['disk_cache_size']})"
            )
        if processes_per_replica > 1:
            raise SpecError(
                f"{where}.cache_size: when model caching is enabled, predictor.processes_per_replica can be at most "
                f"1 (it is {processes_per_replica}); for several instances, each with its own cache, set "
                "tritonize.instances instead"
            )
    return {"cache_size": sizes.get("cache_size"), "disk_cache_size": sizes.get("disk_cache_size")}


def parse_poll_interval(entry, where):
    """The API's tritonize.model_poll_interval ('10s', '500ms', 2) -> seconds, or None."""
    settings = entry.get("tritonize")
    if not isinstance(settings, dict) or settings.get(POLL_INTERVAL_KEY) is None:
        return None
    return parse_duration(settings[POLL_INTERVAL_KEY], f"{where}.tritonize.{POLL_INTERVAL_KEY}", example="10s or 500ms")
