"""A BatchAPI inside Triton: each instance is one worker of one job.

A job loads the API's model with its own config (repository_model.batch_load_config): as many
instances as the job has workers, and the job's spec as the model parameter `tritonize_job_spec`.
Each instance constructs the predictor with the API's predictor.config merged with the job's
config (the job's values win, nested mappings merged, as Cortex did) and, if __init__ names it,
`job_spec`. A batch is one inference request: input BATCH (the batch as JSON text), request
parameter `batch_id`; the answer is RESULT `{"ok": true}` (predict()'s return value is ignored, as
Cortex ignored it) or an error whose message is "predict() raised <type>: <message>" (the job log
shows it; the traceback goes to the instance's log). The request with parameter
`tritonize_on_job_complete=true` calls on_job_complete() (if the predictor has one) instead.

A worker that cannot start (no job spec: loaded by hand; the predictor's import or __init__ raised)
still loads: Triton 2.51's strict readiness (/v2/health/ready) stays false after a failed load until
that model loads again, which would take every realtime API of the server out of its load balancer
for one broken job. Its requests are answered 503 "worker did not start: <why>" instead (the
traceback is in the instance's log), so the job fails with that reason and the job unloads it.
"""

import json
import logging
import os
import time
from dataclasses import dataclass

from .constants import (
    BATCH_API,
    BATCH_ERROR_FORMAT,
    BATCH_ERROR_MESSAGE_CHARS,
    BATCH_ID_PARAMETER,
    BATCH_INPUT_NAME,
    JOB_SPEC_PARAMETER,
    ON_JOB_COMPLETE_PARAMETER,
    PROJECT_DIR,
)
from .errors import PredictorLoadError, log_failure, printable
from .predictor import load_predictor

log = logging.getLogger("tritonize")

OK_BODY = b'{"ok": true}'


def job_spec_from_model_config(model_config, api):
    """The job spec a BatchAPI's model was loaded with (Triton's model config, as JSON text or a dict).

    Raises PredictorLoadError when there is none (loaded by hand, or at start): the load fails with that
    message in Triton's log."""
    if isinstance(model_config, (str, bytes)):
        try:
            model_config = json.loads(model_config)
        except ValueError:
            model_config = {}
    parameters = model_config.get("parameters") if isinstance(model_config, dict) else None
    entry = parameters.get(JOB_SPEC_PARAMETER) if isinstance(parameters, dict) else None
    text = entry.get("string_value") if isinstance(entry, dict) else None
    if not text:
        raise PredictorLoadError(
            f"BatchAPI {api!r} was loaded without a job: a BatchAPI's model is loaded for each job, with the "
            f"job's spec as the model-config parameter {JOB_SPEC_PARAMETER!r} (submit a job to the API's "
            "endpoint, as with Cortex); it is never loaded at start"
        )
    try:
        job_spec = json.loads(text)
    except ValueError:
        job_spec = None
    if not isinstance(job_spec, dict):
        raise PredictorLoadError(
            f"BatchAPI {api!r}: the model-config parameter {JOB_SPEC_PARAMETER!r} is not a JSON object"
        )
    return job_spec


def dry_run_job_spec(api, config=None):
    """The job spec `tritonize test` gives a BatchAPI predictor: one worker, one batch, no submission."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "job_id": "dry-run",
        "api_name": api,
        "kind": BATCH_API,
        "workers": 1,
        "config": dict(config or {}),
        "total_batch_count": 1,
        "start_time": now,
        "created_time": now,
        "timeout": None,
    }


@dataclass(frozen=True)
class BatchRequest:
    """One inference request to a BatchAPI's model, read from Triton's request."""

    text: bytes | None  # the BATCH input's one item: JSON text (b"null" for the completion call)
    batch_id: str
    on_job_complete: bool


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch request gets: 200 (RESULT {"ok": true}) or an error status and its message."""

    status: int
    message: str = ""

    @property
    def ok(self):
        return self.status == 200


def read_batch_request(parameters_json, batch_array):
    """Triton's request parameters (JSON text) and the BATCH input (a numpy array or None) -> BatchRequest;
    a BatchOutcome (400) if they are not what a job sends."""
    try:
        parameters = json.loads(parameters_json or "{}")
    except (ValueError, UnicodeDecodeError):
        return BatchOutcome(400, "request parameters are not valid JSON")
    if not isinstance(parameters, dict):
        parameters = {}
    complete = parameters.get(ON_JOB_COMPLETE_PARAMETER) in (True, "true")
    batch_id = parameters.get(BATCH_ID_PARAMETER)
    batch_id = "" if batch_id is None else str(batch_id)
    if batch_array is None or batch_array.size != 1:
        if complete and batch_array is None:
            return BatchRequest(None, batch_id, True)
        return BatchOutcome(400, f"expected one {BATCH_INPUT_NAME} item: the batch as JSON text")
    item = batch_array.reshape(-1)[0]
    if isinstance(item, str):
        item = item.encode("utf-8", "surrogatepass")
    if not isinstance(item, bytes):
        return BatchOutcome(400, f"{BATCH_INPUT_NAME} must be BYTES: the batch as JSON text")
    return BatchRequest(item, batch_id, complete)


def batch_error(method, exc):
    """The fixed message of a predictor exception: "predict() raised ValueError: <first 500 chars>"."""
    try:
        text = str(exc)
    except BaseException:
        text = "<str() of the exception failed>"
    return printable(
        BATCH_ERROR_FORMAT.format(method=method, type=type(exc).__name__, message=text[:BATCH_ERROR_MESSAGE_CHARS])
    )


def startup_failure(error):
    """A PredictorLoadError's text -> one line: "Predictor.__init__ failed: ValueError: boom" (no traceback)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if len(lines) < 2 else f"{lines[0]} {lines[-1].strip()}"
    return printable(f"worker did not start: {text}"[: BATCH_ERROR_MESSAGE_CHARS + 100])


class UnstartedWorker:
    """A job's instance whose predictor could not be constructed: every request gets the reason (503)."""

    def __init__(self, message):
        self.message = message
        self.predictor = None

    def run(self, request):
        if isinstance(request, BatchOutcome):
            return request
        return BatchOutcome(503, self.message)

    def stop(self):
        pass


def start_worker(version_dir, settings, args, extra_config=None):
    """model.py's initialize() for a BatchAPI: Triton's args -> a BatchWorker for the job the model was loaded
    with, or an UnstartedWorker saying why there is none (never raises: see the module's docstring)."""
    api = settings.name
    try:
        job_spec = job_spec_from_model_config(args.get("model_config"), api)
        predictor = load_predictor(
            os.path.join(version_dir, PROJECT_DIR),
            settings,
            extra_config=extra_config,
            instance_name=args.get("model_instance_name"),
            job_spec=job_spec,
        )
    except PredictorLoadError as exc:
        log.error("%s: the job's worker (instance %s) did not start:\n%s", api, args.get("model_instance_name"), exc)
        return UnstartedWorker(startup_failure(exc))
    log.info("%s: job %s: worker ready (instance %s)", api, job_spec.get("job_id"), args.get("model_instance_name"))
    return BatchWorker(predictor, api, job_spec)


class BatchWorker:
    """One instance of a job: runs its batches through the predictor (adapter/runtime/predictor.py)."""

    def __init__(self, predictor, api_name, job_spec):
        self.predictor = predictor
        self.api_name = api_name
        self.job_spec = job_spec
        self.job_id = str(job_spec.get("job_id", ""))

    def stop(self):
        """Instance shutdown (the job's unload): pending metrics are sent."""
        self.predictor.stop()

    def run(self, request):
        """A BatchRequest (or the BatchOutcome read_batch_request refused it with) -> its BatchOutcome; never raises."""
        if isinstance(request, BatchOutcome):
            return request
        try:
            if request.on_job_complete:
                return self._on_job_complete()
            return self._predict(request)
        except BaseException as exc:  # tritonize's own failure: this request fails alone
            log_failure(f"{self.api_name}: job {self.job_id}: batch {request.batch_id} failed in tritonize", exc)
            return BatchOutcome(500, "internal error running the batch (see the server log)")

    def _predict(self, request):
        try:
            payload = json.loads(request.text)
        except (ValueError, UnicodeDecodeError) as exc:
            return BatchOutcome(400, f"{BATCH_INPUT_NAME} is not JSON text: {exc}")
        if not isinstance(payload, list):
            return BatchOutcome(400, f"{BATCH_INPUT_NAME} must be a JSON list of items, got {type(payload).__name__}")
        log.info("%s: job %s: batch %s (%d items)", self.api_name, self.job_id, request.batch_id, len(payload))
        try:
            self.predictor.predict_batch(payload, request.batch_id)
        except BaseException as exc:
            log_failure(f"{self.api_name}: job {self.job_id}: predict() failed for batch {request.batch_id}", exc)
            return BatchOutcome(500, batch_error("predict", exc))
        return BatchOutcome(200)

    def _on_job_complete(self):
        method = getattr(self.predictor.instance, "on_job_complete", None)
        if not callable(method):
            return BatchOutcome(200)
        log.info("%s: job %s: running on_job_complete()", self.api_name, self.job_id)
        try:
            method()
        except BaseException as exc:
            log_failure(f"{self.api_name}: job {self.job_id}: on_job_complete() failed", exc)
            return BatchOutcome(500, batch_error("on_job_complete", exc))
        return BatchOutcome(200)
