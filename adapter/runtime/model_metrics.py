"""A Triton gauge of the models each instance holds in memory (python_client).

tritonize_models_loaded{model=<api>, model_name=<name>, model_version=<version>, instance=<instance>}
is 1 while that version is in this instance's memory and 0 once it was evicted or removed.
Outside Triton (tritonize test) there is no gauge.
"""

import logging

from .constants import LOADED_MODELS_METRIC
from .metrics import GAUGE, triton_metric

log = logging.getLogger("tritonize")


class LoadedModelsGauge:
    def __init__(self, api_name, instance_name):
        self._api, self._instance = api_name, instance_name or ""
        self._labels = {}  # (name, version) -> its labels
        description = "Models a tritonize python_client holds in memory (1 = loaded)"
        self._gauge = triton_metric(LOADED_MODELS_METRIC, description, GAUGE, owner=api_name)

    def update(self, keys):
        """keys: the (name, version) pairs in memory now."""
        if self._gauge is None:
            return
        keys = set(keys)
        try:
            for key in keys - set(self._labels):
                name, version = key
                labels = {"model": self._api, "model_name": name, "model_version": version, "instance": self._instance}
                self._labels[key] = tuple(sorted(labels.items()))
            for key, labels in self._labels.items():
                self._gauge.apply(labels, 1 if key in keys else 0)
        except Exception as exc:  # a metric must never fail a load
            log.warning("%s: updating %s failed: %s", self._api, LOADED_MODELS_METRIC, exc)
