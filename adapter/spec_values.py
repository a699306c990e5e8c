"""The grammar of values in a spec and on the command line, one definition each:
known keys, durations, sizes and Kubernetes quantities."""

import math
import re

from tritonize.errors import SpecError

# Cortex's durations are Go's time.ParseDuration: one or more <number><unit> ("1m30s", "1.5h",
# "300ms", ".5s"), units ns, us/µs/μs, ms, s, m, h; "0" alone needs no unit. tritonize also takes a
# bare number as seconds (YAML `window: 60`, `--request-timeout 30`). No sign: durations here are >= 0.
_DURATION_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = r"(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)"
DURATION_PATTERN = rf"^\+?(?:{_DURATION_PART})+$|^\+?(?:\d+\.?\d*|\.\d+)$"
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_PARTS = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
# "512k", "10m", "1g", "1GB", "4096" (bytes): powers of 1024, as docker's --shm-size.
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)b?\s*$", re.IGNORECASE)
# Kubernetes resource quantities: "1", "500m", "2Gi".
QUANTITY_PATTERN = r"^(\d+(?:\.\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_QUANTITY_FACTORS = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


# Triton model names become directory names; keep them portable.
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# networking.endpoint without its slashes: segments like API names (so it never meets /_tritonize/...).
ENDPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")


def check_model_name(name, where="name"):
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise SpecError(
            f"{where}: {name!r} is not a valid API name (letters, digits, '_', '.', '-'; "
            "start with a letter or digit; at most 128 characters)"
        )
    return name


def parse_endpoint_path(endpoint, where):
    """networking.endpoint ('v1/classify/', '/a') -> '/v1/classify'."""
    if not isinstance(endpoint, str) or not ENDPOINT_RE.match(endpoint.strip("/")):
        raise SpecError(
            f"{where}: {endpoint!r} is not a URL path (letters, digits, '-', '_', '.', '/' between segments)"
        )
    return "/" + endpoint.strip("/")


def check_path_text(value, where):
    """A path in the spec: a non-empty string the OS can take (where it points is checked by the build)."""
    if not isinstance(value, str) or not value:
        raise SpecError(f"{where}: expected a path relative to the project directory, got {value!r}")
    if "\0" in value:  # the OS refuses it (ValueError deep in os.path): say so here
        raise SpecError(f"{where}: {value!r} contains a NUL byte")


def check_env_value(key, value, where):
    """predictor.env: names to scalar values (a mapping or list is a mistake)."""
    if not isinstance(key, str) or isinstance(value, (dict, list)):
        raise SpecError(f"{where}: expected a string value, got {value!r}")


def check_keys(section, known, where):
    """Refuse the first key of a spec section that tritonize does not know, naming the known ones."""
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")


def parse_duration(value, where, example="50ms or 0.1s"):
    """A duration -> seconds (float, >= 0)."""
    if isinstance(value, bool):
        raise SpecError(f"{where}: expected a duration like {example}, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise SpecError(f"{where}: expected a duration like {example}, got {value!r}")
        if value < 0:
            raise SpecError(f"{where}: must not be negative, got {value!r}")
        return float(value)
    text = str(value).strip()
    if not _DURATION.match(text):
        raise SpecError(f"{where}: expected a duration like {example} (Go's: 1m30s, 1.5h, 300ms), got {value!r}")
    text = text.lstrip("+")
    parts = _DURATION_PARTS.findall(text)
    if not parts:  # a bare number: seconds
        return float(text)
    return sum(float(number) * _DURATION_UNIT_S[unit] for number, unit in parts)


def parse_duration_us(value, where):
    """'0.1s', '50ms', '250us', 0.05 (seconds) -> whole microseconds."""
    return int(round(parse_duration(value, where) * 1_000_000))


def parse_duration_s(value, where):
    """'60s' / '5m' / '1h' / 30 -> whole seconds, rounded up."""
    return int(math.ceil(parse_duration(value, where, example="60s, 5m or 1h")))


def parse_size(text, where):
    """'512k', '10m', '1g', '4096' -> bytes (> 0)."""
    match = _SIZE.match(str(text))
    if not match or int(match.group(1)) <= 0:
        raise SpecError(f"{where}: {text!r} is not a size like 512k, 10m or 1g")
    return int(match.group(1)) * 1024 ** " kmg".index((match.group(2) or " ").lower())


def is_quantity(text):
    return bool(_QUANTITY.match(str(text).strip()))


def check_quantity(value, where):
    """compute.cpu / compute.mem: a Kubernetes quantity -> its text."""
    text = str(value).strip()
    if isinstance(value, bool) or not is_quantity(text):
        raise SpecError(f"{where}: expected a Kubernetes quantity (e.g. 1, 500m, 2Gi), got {value!r}")
    return text


def parse_quantity(text, where="quantity"):
    """A Kubernetes quantity -> its number (cpu in cores, memory in bytes)."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise SpecError(f"{where}: expected a Kubernetes quantity (e.g. 1, 500m, 2Gi), got {text!r}")
    return float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]
