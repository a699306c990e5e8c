"""Which URL path answers for which API: /<api> always, and the spec's networking.endpoint when given.

Read from the repository's typed model (adapter/runtime/repository_model.py, standard library only:
this runs from the zipapp in images). A model added by hand (no tritonize settings) is not a Cortex
API: Triton serves it at /v2/models/<name>/..., the Cortex endpoint does not route it.
"""

import os
from dataclasses import dataclass

from tritonize.adapter.runtime.repository_model import RepositoryFormatError, read_repository_settings
from tritonize.errors import ServeError

from .traffic_splitter import splitter_routes


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
    # Its config declares the status output (a predictor's 2xx status other than 200): every API of a
    # repository this tritonize reads (format 2, adapter/runtime/repository_model.py) does.
    status_output: bool = True
    # A BatchAPI: its paths take Cortex's job API (cortex_endpoint/jobs.py), not predictions.
    batch: bool = False


def load_routes(repository, environ=os.environ):
    """{path: Route} for every tritonize API in the repository (paths without a trailing slash), and its
    TrafficSplitters' paths (cortex_endpoint/traffic_splitter.py); `environ` holds serve's --request-timeout
    (REQUEST_TIMEOUT_ENV), for APIs whose spec sets none."""
    try:
        repository_settings = read_repository_settings(repository)
        apis = repository_settings.apis
    except RepositoryFormatError as exc:
        raise ServeError(str(exc)) from None
    routes = {}
    for name, settings in sorted(apis.items()):
        route = Route(
            name,
            streaming=settings.streaming,
            typed=settings.typed,
            timeout_s=settings.timeout_s(environ),
            batch=settings.batch,
        )
        for path in settings.paths:
            other = routes.get(path)
            if other is not None and other.api != name:
                raise ServeError(f"APIs {other.api!r} and {name!r} both answer on {path}: change networking.endpoint")
            routes[path] = route
    marker = repository_settings.marker
    splitters = marker.traffic_splitters if marker else ()
    routes.update(splitter_routes(splitters, routes))
    return routes


def batch_apis(routes):
    """The names of the BatchAPIs among the routes."""
    return sorted({route.api for route in routes.values() if isinstance(route, Route) and route.batch})
