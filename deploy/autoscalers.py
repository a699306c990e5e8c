"""Cortex's autoscaling settings -> what Kubernetes' autoscalers (HPA, KEDA) are given.

Cortex scaled each API on its in-flight requests per replica, averaged over `window`.
Triton exports `nv_inference_request_duration_us`, a counter of the time requests
spent inside the server; its per-second rate divided by 1e6 is the average number of
requests in flight (Little's law), which is what the generated autoscalers target.
"""

# The Triton 2.51 counter the autoscalers read, and the name prometheus-adapter serves it as.
INFLIGHT_SOURCE_METRIC = "nv_inference_request_duration_us"
INFLIGHT_METRIC = "tritonize_inflight_requests"
# How often Kubernetes' HPA acts (kube-controller-manager's default sync period): the
# period of the Percent policies that express Cortex's max up/downscale factors.
HPA_PERIOD_S = 15


def hpa_behavior(a):
    """`behavior` of an autoscaling/v2 HPA (also KEDA's advanced.horizontalPodAutoscalerConfig)."""
    up = {
        "stabilizationWindowSeconds": a.upscale_stabilization_s,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": a.max_upscale_percent, "periodSeconds": HPA_PERIOD_S}],
    }
    down = {
        "stabilizationWindowSeconds": a.downscale_stabilization_s,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": a.max_downscale_percent, "periodSeconds": HPA_PERIOD_S}],
    }
    if a.upscale_tolerance is not None:
        up["tolerance"] = _quantity(a.upscale_tolerance)
    if a.downscale_tolerance is not None:
        down["tolerance"] = _quantity(a.downscale_tolerance)
    return {"scaleUp": up, "scaleDown": down}


def _quantity(number):
    """A Kubernetes quantity string for a float (0.05 -> '50m', 2.0 -> '2')."""
    if float(number).is_integer():
        return str(int(number))
    return f"{int(round(number * 1000))}m"


def target_quantity(a):
    return _quantity(a.target_replica_concurrency)
