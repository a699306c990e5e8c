"""A BatchAPI's routes (Cortex's job API) and the endpoint's job paths.

On the API's paths: POST submits a job (`?dryRun=true` lists what it would read), GET with `jobID`
answers the job's status, GET without it every job of the API (newest first), DELETE with `jobID`
stops a job. Beside them: GET /_tritonize/jobs/<api>/<job_id>/log (the job's log, text) and
GET /_tritonize/metrics (job progress, Prometheus text). The store's reads and writes run in a thread
(they touch disk, S3 for dryRun), never on the event loop.
"""

import asyncio
import ipaddress
import json
from urllib.parse import parse_qs

from tritonize.adapter.runtime.constants import JOB_LOG_PATH
from tritonize.batch.manager import JobManager, JobNotInProgress
from tritonize.batch.metrics import prometheus_text
from tritonize.batch.sources import SourceError
from tritonize.batch.store import UnknownJob
from tritonize.batch.submission import SubmissionError, parse_body, require_remote

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
METRICS_PATH = b"/_tritonize/metrics"
LOG_PREFIX = JOB_LOG_PATH.split("{", 1)[0].encode()  # b"/_tritonize/jobs/"
PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"
REDACTED = "<redacted>"


def _json(conn, status, document):
    return conn.respond(status, JSON, json.dumps(document).encode("utf-8"))


def _error(conn, status, message):
    return _json(conn, status, {"error": message})


class JobRoutes:
    def __init__(self, store_root, batch_apis, settings=None):
        """`settings`: {api: ApiSettings} of the repository's BatchAPIs (GET's api_spec), None: names only."""
        self.manager = JobManager(store_root)
        self.batch_apis = tuple(batch_apis)
        self.settings = dict(settings or {})

    def handles(self, path):
        return path == METRICS_PATH or path.startswith(LOG_PREFIX)

    def handle_own(self, conn, request, path):
        """/_tritonize/metrics and /_tritonize/jobs/<api>/<job_id>/log."""
        if request.method not in (b"GET", b"HEAD"):
            return conn.respond(405, TEXT, b"method not allowed: GET", b"allow: GET\r\n")
        head = request.method == b"HEAD"
        if path == METRICS_PATH:
            return self._later(conn, self._metrics, head)
        parts = path[len(LOG_PREFIX) :].decode("utf-8", errors="replace").split("/")
        if len(parts) != 3 or parts[2] != "log" or parts[0] not in self.batch_apis:
            return conn.respond(404, TEXT, b"not found: GET /_tritonize/jobs/<api>/<job_id>/log")
        return self._later(conn, lambda: self._log(parts[0], parts[1]), head)

    def handle_api(self, conn, request, api):
        method = request.method
        query = {key: values[-1] for key, values in parse_qs(request.query.decode("latin-1")).items()}
        job_id = query.get("jobID")
        if method == b"POST":
            dry_run = query.get("dryRun", "").lower() == "true"
            local = _from_loopback(conn)
            return self._later(conn, lambda: self._submit(api, request.body, dry_run, local))
        if method in (b"GET", b"HEAD"):
            head = method == b"HEAD"
            if job_id is None:
                return self._later(conn, lambda: self._list(api), head)
            return self._later(conn, lambda: self._get(api, job_id, self._endpoint(request, api)), head)
        if method == b"DELETE":
            if job_id is None:
                return _error(conn, 400, "jobID: required (DELETE /<api>?jobID=<id>)")
            return self._later(conn, lambda: self._stop(api, job_id))
        if method == b"OPTIONS":
            return conn.respond(204, TEXT, b"", b"access-control-max-age: 1728000\r\n")
        return conn.respond(405, TEXT, b"method not allowed: POST, GET or DELETE", b"allow: GET, POST, DELETE\r\n")

    async def _later(self, conn, work, head=False):
        status, content_type, body = await asyncio.get_running_loop().run_in_executor(None, _answer, work)
        conn.respond(status, content_type, body, head=head)

    # each returns (status, content type, body); runs in a thread

    def _submit(self, api, body, dry_run, local=True):
        """`local`: the client is on this machine (loopback), which alone may name local paths."""
        submission = parse_body(body)
        if not local:
            require_remote(submission)
        if dry_run:  # Cortex answered dry runs as text, for people
            lines = self.manager.dry_run(submission)
            return 200, TEXT, ("\n".join([*lines, "validations passed"]) + "\n").encode("utf-8")
        return 200, JSON, _dumps(self.manager.submit(api, submission))

    def _get(self, api, job_id, endpoint):
        status = self.manager.get(api, job_id)
        return 200, JSON, _dumps({"job_status": status, "endpoint": endpoint, "api_spec": self._api_spec(api)})

    def _endpoint(self, request, api):
        """The API's URL (its networking.endpoint when it has one), as Cortex answered it."""
        settings = self.settings.get(api)
        return f"http://{_host(request)}{settings.paths[-1] if settings is not None else '/' + api}"

    def _api_spec(self, api):
        settings = self.settings.get(api)
        return api_spec(settings) if settings is not None else {"name": api, "kind": "BatchAPI"}

    def _list(self, api):
        return 200, JSON, _dumps({"jobs": self.manager.list(api)})

    def _stop(self, api, job_id):
        self.manager.stop(api, job_id)
        return 200, JSON, _dumps({"message": f"stopped job {job_id}"})

    def _log(self, api, job_id):
        return 200, TEXT, self.manager.log(api, job_id).encode("utf-8")

    def _metrics(self):
        statuses = [job for api in self.batch_apis for job in self.manager.list(api)]
        return 200, PROMETHEUS, prometheus_text(statuses).encode("utf-8")


def _answer(work):
    try:
        return work()
    except SubmissionError as exc:
        return 400, JSON, _dumps({"error": str(exc)})
    except (SourceError, JobNotInProgress) as exc:
        return 400, JSON, _dumps({"error": str(exc)})
    except UnknownJob as exc:
        return 404, JSON, _dumps({"error": f"job {exc.args[0]} not found"})
    except OSError as exc:
        return 503, JSON, _dumps({"error": f"the job store is not usable: {exc.strerror or exc}"})


def _dumps(document):
    return json.dumps(document).encode("utf-8")


def _from_loopback(conn):
    peer = conn.transport.get_extra_info("peername") if conn.transport is not None else None
    try:
        address = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return False  # a Unix socket, or no peer: not known to be this machine
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback  # ::ffff:127.0.0.1 on a dual-stack socket


def _host(request):
    host = next((value for name, value in request.headers if name == b"host"), b"localhost")
    return host.decode("latin-1")


def api_spec(settings):
    """Cortex's api_spec (GET ?jobID=) from what the built repository knows of the API. predictor.env's values
    are never sent (they, and the project's .env merged into them, hold secrets): only the names, redacted."""
    predictor = settings.predictor
    python_path = predictor.python_path
    return {
        "name": settings.name,
        "kind": settings.kind,
        "predictor": {
            "type": "python",
            "path": predictor.path,
            "class_name": predictor.class_name,
            "config": predictor.config,
            # Cortex's python_path is one folder; tritonize's may be several.
            "python_path": python_path[0] if len(python_path) == 1 else (list(python_path) or None),
            "env": dict.fromkeys(predictor.env, REDACTED),
            "dependencies": settings.dependencies or None,
        },
        "networking": {"endpoint": settings.paths[-1]},
    }
