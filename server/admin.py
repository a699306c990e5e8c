"""The few Triton admin calls the launcher makes (HTTP, with the admin token)."""

import json
import urllib.error
import urllib.request

from tritonize.adapter.runtime.constants import ADMIN_TOKEN_HEADER, RELOAD_PARAMETER
from tritonize.errors import AdminError
from tritonize.host import local_http

# The model whose failed load marks a draining server not ready (never in a repository).
DRAINING_MODEL = "tritonize-draining"


class TritonAdmin:
    """index() / model_config() / load() / unload() against one server."""

    def __init__(self, http_url, token=None, timeout_s=60.0):
        self.http_url = http_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _call(self, path, body=None, timeout=None):
        request = urllib.request.Request(
            self.http_url + path,
            data=None if body is None else json.dumps(body).encode("utf-8"),
            method="GET" if body is None else "POST",
        )
        if self.token:
            request.add_header(ADMIN_TOKEN_HEADER, self.token)
        try:
            with local_http.urlopen(request, timeout=timeout or self.timeout_s) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", errors="replace")
            try:
                text = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                pass
            raise AdminError(exc.code, text) from None
        return json.loads(data) if data.strip() else None

    def live(self, timeout=1.0):
        try:
            self._call("/v2/health/live", timeout=timeout)
            return True
        except (AdminError, OSError):
            return False

    def index(self, timeout=None):
        """[{"name", "version", "state", "reason"}] for every model in the repository."""
        return self._call("/v2/repository/index", {}, timeout=timeout)

    def model_config(self, name):
        return self._call(f"/v2/models/{name}/config")

    def load(self, name, config=None, timeout=None):
        """Returns once the model is loaded: as long as its predictor's __init__ takes (timeout)."""
        body = {"parameters": {"config": json.dumps(config)}} if config is not None else {}
        self._call(f"/v2/repository/models/{name}/load", body, timeout=timeout)

    def announce_not_ready(self):
        """Make /v2/health/ready say false while every model keeps serving (Triton 2.51 has no drain
        mode): load a model that cannot load. Strict readiness then fails; nothing else changes."""
        config = {"name": DRAINING_MODEL, "backend": DRAINING_MODEL}  # no such backend: fails in ms
        body = {"parameters": {"config": json.dumps(config), "file:1/README": "ZHJhaW5pbmc="}}
        try:
            self._call(f"/v2/repository/models/{DRAINING_MODEL}/load", body, timeout=10)
        except AdminError:
            pass  # the expected answer: 400 "load failed"

    def unload(self, name):
        self._call(f"/v2/repository/models/{name}/unload", {})

    def reload(self, name, nonce, timeout=None):
        """Start fresh instance processes for `name`.

        A load with an unchanged config is a no-op on Triton 2.51, and unload + load
        waits ~12 s for the dead stub; a load whose config differs only by a nonce
        parameter replaces the instances in about a second (old ones keep serving
        until the new ones are ready).
        """
        config = self.model_config(name)
        config.setdefault("parameters", {})[RELOAD_PARAMETER] = {"string_value": str(nonce)}
        self.load(name, config, timeout=timeout)
