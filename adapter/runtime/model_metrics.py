"""A Triton gauge of the models each instance holds in memory (python_client).

tritonize_models_loaded{model=<api>, model_name=<name>, model_version=<version>, instance=<instance>}
is 1 while that version is in this instance's memory and 0 once it was evicted or removed.
Outside Triton (tritonize test) there is no gauge.
"""

import logging

from .constants import LOADED_MODELS_METRIC

log = logging.getLogger("tritonize")


class LoadedModelsGauge:
    def __init__(self, api_name, instance_name):
        self._api, self._instance = api_name, instance_name or ""
        self._metrics = {}
        self._family = None
        try:
            import triton_python_backend_utils as pb_utils

            self._family = pb_utils.MetricFamily(
                name=LOADED_MODELS_METRIC,
                description="Models a tritonize python_client holds in memory (1 = loaded)",
                kind=pb_utils.MetricFamily.GAUGE,
            )
        except ImportError:  # not inside Triton
            pass
        except Exception as exc:  # metrics disabled: serving goes on
            log.warning("%s: no %s metric: %s", api_name, LOADED_MODELS_METRIC, exc)

    def update(self, keys):
        """keys: the (name, version) pairs in memory now."""
        if self._family is None:
            return
        keys = set(keys)
        try:
            for key, metric in self._metrics.items():
                metric.set(1 if key in keys else 0)
            for name, version in keys - set(self._metrics):
                labels = {"model": self._api, "model_name": name, "model_version": version, "instance": self._instance}
                metric = self._family.Metric(labels=labels)
                metric.set(1)
                self._metrics[(name, version)] = metric
        except Exception as exc:  # a metric must never fail a load
            log.warning("%s: updating %s failed: %s", self._api, LOADED_MODELS_METRIC, exc)
