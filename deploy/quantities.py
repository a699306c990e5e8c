"""Kubernetes resource quantities: add up the cpu / mem requests of the APIs sharing one pod."""

from tritonize.adapter.spec_values import parse_quantity


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
