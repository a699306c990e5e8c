"""The job engine's calls to Triton over HTTP: a batch's /infer (keep-alive, one connection per worker
thread) and the model-repository calls that load a job's model and unload it (with the admin token).

The batch model's protocol (the BatchAPI contract, model.py of a BatchAPI): input BATCH (BYTES, [1]:
the JSON text of the batch's items, `null` for the completion call), request parameters `batch_id` and
`tritonize_on_job_complete`; output RESULT. A predictor's exception is a Triton error whose message
says what predict() raised.
"""

import http.client
import json
import struct

from tritonize.adapter.runtime.constants import (
    ADMIN_TOKEN_HEADER,
    BATCH_ID_PARAMETER,
    BATCH_INPUT_NAME,
    BATCH_OUTPUT_NAME,
    ON_JOB_COMPLETE_PARAMETER,
    RELOAD_PARAMETER,
)

# Triton's message for a request whose instance process died (python backend, 2.51).
CRASH_MARKER = "is not healthy"
# The model is not there while the watchdog replaces it, or after a failed reload.
UNAVAILABLE_MARKERS = ("unknown model", "is not ready", "not found", "unavailable")
# The runtime's answer when the job's predictor could not start (its import or __init__ raised): the model
# loads anyway (a failed load would keep Triton's readiness false), every batch gets this (503).
NOT_STARTED_PREFIX = "worker did not start:"


class TritonUnreachable(Exception):
    """No answer from Triton (refused, reset): nothing is known about the batch."""


class TritonError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def not_started(self):
        """The job's predictor failed to start (status_worker_error)."""
        return self.message.startswith(NOT_STARTED_PREFIX)

    @property
    def crashed(self):
        """The instance died under this request (or the model is being healed)."""
        if self.not_started:
            return False
        text = self.message.lower()
        return CRASH_MARKER in text or any(marker in text for marker in UNAVAILABLE_MARKERS)


def infer_body(batch_text, batch_id, on_job_complete=False):
    """-> (headers, body) of one batch's /infer request, BATCH as binary data."""
    data = batch_text.encode("utf-8")
    parameters = {BATCH_ID_PARAMETER: batch_id}
    if on_job_complete:
        parameters[ON_JOB_COMPLETE_PARAMETER] = True
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": BATCH_INPUT_NAME,
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(data) + 4},
                }
            ],
            "outputs": [{"name": BATCH_OUTPUT_NAME, "parameters": {"binary_data": False}}],
            "parameters": parameters,
        }
    ).encode("utf-8")
    headers = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}
    return headers, header + struct.pack("<I", len(data)) + data


class TritonClient:
    """One keep-alive connection (not thread-safe: one per worker thread)."""

    def __init__(self, host, port, token=None, timeout_s=None):
        self.host = host
        self.port = port
        self.token = token
        self.timeout_s = timeout_s
        self._connection = None

    def _request(self, method, path, body=None, headers=None, admin=False):
        headers = dict(headers or {})
        if admin and self.token:
            headers[ADMIN_TOKEN_HEADER] = self.token
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: once more, fresh
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return response.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt == 2:
                    raise TritonUnreachable(str(exc) or type(exc).__name__) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise TritonUnreachable(str(exc) or type(exc).__name__) from None
        raise AssertionError("unreachable")

    def _call(self, method, path, body=None, headers=None, admin=False):
        status, data = self._request(method, path, body, headers, admin)
        if status != 200:
            raise TritonError(status, error_message(data))
        return json.loads(data) if data.strip() else None

    def infer(self, api, batch_text, batch_id, on_job_complete=False):
        """Runs one batch; raises TritonError (the predictor failed, or its instance died) or TritonUnreachable."""
        headers, body = infer_body(batch_text, batch_id, on_job_complete)
        self._call("POST", f"/v2/models/{api}/infer", body, headers)

    def load(self, api, config):
        body = json.dumps({"parameters": {"config": json.dumps(config)}}).encode("utf-8")
        self._call("POST", f"/v2/repository/models/{api}/load", body, {"Content-Type": "application/json"}, True)

    def unload(self, api):
        self._call("POST", f"/v2/repository/models/{api}/unload", b"{}", {"Content-Type": "application/json"}, True)

    def state(self, api):
        """The model's state in the repository index (READY, UNLOADING, UNAVAILABLE, ...), "" if not listed."""
        index = self._call("POST", "/v2/repository/index", b"{}", {"Content-Type": "application/json"}, True)
        return next((model.get("state", "") for model in index or [] if model.get("name") == api), "")

    def generation(self, api):
        """-> (ready, reload nonce): the watchdog's heal loads the model with a new nonce (server/admin.py)."""
        try:
            status, _ = self._request("GET", f"/v2/models/{api}/ready")
            if status != 200:
                return False, None
            config = self._call("GET", f"/v2/models/{api}/config")
        except (TritonError, TritonUnreachable):
            return False, None
        nonce = (config.get("parameters") or {}).get(RELOAD_PARAMETER, {}).get("string_value")
        return True, nonce

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def error_message(data):
    text = data.decode("utf-8", errors="replace")
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text
