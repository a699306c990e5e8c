"""Kubernetes resource quantities: add up the cpu / mem requests of the APIs sharing one pod."""

import re

from tritonize.errors import SpecError

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_FACTORS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def parse_quantity(text, where="quantity"):
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise SpecError(f"{where}: expected a Kubernetes quantity (e.g. 1, 500m, 2Gi), got {text!r}")
    return float(match.group(1)) * _FACTORS[match.group(2)]


def sum_cpu(values):
    """['1', '500m'] -> '1500m' (None when there is nothing to add)."""
    values = [v for v in values if v]
    if not values:
        return None
    if len(values) == 1:
        return str(values[0])
    millis = round(sum(parse_quantity(v, "compute.cpu") for v in values) * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def sum_memory(values):
    """['1Gi', '512Mi'] -> '1536Mi' (whole Mi, rounded up; None when there is nothing to add)."""
    values = [v for v in values if v]
    if not values:
        return None
    if len(values) == 1:
        return str(values[0])
    total = sum(parse_quantity(v, "compute.mem") for v in values)
    return f"{int(-(-total // 2**20))}Mi"
