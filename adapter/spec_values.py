"""The grammar of values in a spec and on the command line, one definition each:
known keys, durations, sizes and Kubernetes quantities."""

import math
import re

from tritonize.errors import SpecError

# "50ms", "0.1s", "250us", "5m", "1h"; a bare number is seconds (as Cortex's durations).
_DURATION = re.compile(r"^\s*(\d*\.?\d+)\s*(us|µs|ms|s|m|h)?\s*$")
_DURATION_S = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# "512k", "10m", "1g", "1GB", "4096" (bytes): powers of 1024, as docker's --shm-size.
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)b?\s*$", re.IGNORECASE)
# Kubernetes resource quantities: "1", "500m", "2Gi".
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
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
        if value < 0:
            raise SpecError(f"{where}: must not be negative, got {value!r}")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise SpecError(f"{where}: expected a duration like {example}, got {value!r}")
    return float(match.group(1)) * _DURATION_S[match.group(2)]


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


def parse_quantity(text, where="quantity"):
    """A Kubernetes quantity -> its number (cpu in cores, memory in bytes)."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise SpecError(f"{where}: expected a Kubernetes quantity (e.g. 1, 500m, 2Gi), got {text!r}")
    return float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]
