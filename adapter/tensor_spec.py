"""Typed tensor declarations (predictor.tensors / --input / --output), normalized."""

from tritonize.adapter.runtime.tensors import normalize_dtype
from tritonize.adapter.spec_values import check_keys
from tritonize.errors import SpecError


def _one(entry, where, allow_ragged):
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: expected a mapping with name, dtype and shape")
    keys = {"name", "dtype", "shape"} | ({"ragged"} if allow_ragged else set())
    check_keys(entry, keys, where)
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or name.startswith("_"):
        raise SpecError(f"{where}.name: expected a tensor name, got {name!r}")
    dtype = parse_dtype(entry.get("dtype", ""), f"{where}.dtype")
    shape = parse_shape(entry.get("shape", []), f"{where}.shape")
    result = {"name": name, "dtype": dtype, "shape": shape}
    if allow_ragged:
        result["ragged"] = bool(entry.get("ragged", False))
    return result


def parse_dtype(value, where):
    """'float32' / 'FP32' / 'bytes' -> the normalized dtype name."""
    dtype = normalize_dtype(value) if isinstance(value, str) else None
    if dtype is None:
        raise SpecError(f"{where}: unknown dtype {value!r} (e.g. float32, int64, bool, bytes, FP32)")
    return dtype


def parse_shape(value, where):
    """[-1, 4] / 3 -> a per-request shape: positive sizes or -1."""
    shape = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(shape, list) or any(
        isinstance(d, bool) or not isinstance(d, int) or d == 0 or d < -1 for d in shape
    ):
        raise SpecError(f"{where}: expected a list of positive sizes or -1 (per request, no batch dim), got {value!r}")
    return shape


def parse_tensors(section, where):
    """{inputs: [...], outputs: [...]} -> normalized dict, or None if absent."""
    if section is None:
        return None
    if not isinstance(section, dict) or set(section) - {"inputs", "outputs"}:
        raise SpecError(f"{where}: expected a mapping with inputs and outputs")
    result = {}
    for key in ("inputs", "outputs"):
        entries = section.get(key)
        if not isinstance(entries, list) or not entries:
            raise SpecError(f"{where}.{key}: expected a non-empty list")
        result[key] = [_one(e, f"{where}.{key}[{i}]", key == "inputs") for i, e in enumerate(entries)]
        names = [t["name"] for t in result[key]]
        if len(set(names)) != len(names):
            raise SpecError(f"{where}.{key}: tensor names must be unique")
    return result


def parse_tensor_option(text, allow_ragged):
    """'x:float32:-1,4[:ragged]' (command line) -> a declaration mapping."""
    parts = text.split(":")
    if len(parts) not in (2, 3, 4) or (len(parts) == 4 and (parts[3] != "ragged" or not allow_ragged)):
        raise SpecError(
            f"{text!r}: expected NAME:DTYPE[:SHAPE]{'[:ragged]' if allow_ragged else ''}, e.g. x:float32:-1,4"
        )
    shape = []
    if len(parts) > 2 and parts[2]:
        try:
            shape = [int(d) for d in parts[2].split(",")]
        except ValueError:
            raise SpecError(f"{text!r}: shape must be comma-separated integers") from None
    entry = {"name": parts[0], "dtype": parts[1], "shape": shape}
    if len(parts) == 4:
        entry["ragged"] = True
    return entry
