"""Which URL path answers for which API: /<api> always, and the spec's networking.endpoint when given."""

import json
import os
import re
from dataclasses import dataclass

from tritonize.adapter.runtime.constants import SETTINGS_FILE, STATUS_OUTPUT_NAME
from tritonize.adapter.runtime.request_timeout import request_timeout_s
from tritonize.errors import ServeError

_DECOUPLED = re.compile(r"decoupled\s*:\s*true")
# A model built with the status output (adapter/model_config.py), or an older one without it.
_STATUS_OUTPUT = re.compile(r'name\s*:\s*"' + STATUS_OUTPUT_NAME + '"')


@dataclass(frozen=True)
class Route:
    api: str
    # A decoupled (streaming) model: answered from Triton's gRPC stream, as a chunked response.
    streaming: bool = False
    # A typed tensor API (predictor.tensors): no body to send; clients use Triton's /infer.
    typed: bool = False
    # The API's request timeout in seconds (adapter/runtime/request_timeout.py), or None: a dead instance
    # after that long is answered 504.
    timeout_s: float | None = None
    # Its config declares the status output (a predictor's 2xx status other than 200).
    status_output: bool = False


def endpoint_path(endpoint):
    """'my/path' or '/my/path/' -> '/my/path'."""
    return "/" + endpoint.strip().strip("/")


def load_routes(repository, environ=os.environ):
    """{path: Route} for every model in the repository (paths without a trailing slash); `environ` holds
    serve's --request-timeout (REQUEST_TIMEOUT_ENV), for APIs whose spec sets none."""
    routes = {}
    for api in sorted(os.listdir(repository)):
        config = os.path.join(repository, api, "config.pbtxt")
        if not os.path.isfile(config):
            continue
        with open(config, encoding="utf-8") as f:
            text = f.read()
        streaming = bool(_DECOUPLED.search(text))
        settings = {}
        settings_path = os.path.join(repository, api, "1", SETTINGS_FILE)
        if os.path.isfile(settings_path):
            with open(settings_path, encoding="utf-8") as f:
                settings = json.load(f)
        route = Route(
            api,
            streaming=streaming,
            typed=bool(settings.get("tensors")),
            timeout_s=request_timeout_s(settings, environ),
            status_output=bool(_STATUS_OUTPUT.search(text)),
        )
        paths = {"/" + api}
        if settings.get("endpoint"):
            paths.add(endpoint_path(settings["endpoint"]))
        for path in paths:
            other = routes.get(path)
            if other is not None and other.api != api:
                raise ServeError(f"APIs {other.api!r} and {api!r} both answer on {path}: change networking.endpoint")
            routes[path] = route
    return routes
