"""One `tritonize serve` of a project with a RealtimeAPI and BatchAPIs, and HTTP to its Cortex endpoint:
what the batch end-to-end tests (test_e2e_batch_jobs.py, test_e2e_batch_review.py) share."""

import http.client
import json

from conftest import ServeProcess, run_tritonize

# The realtime API beside the BatchAPIs: answering while jobs run.
ECHO = """
class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        return {"echo": payload}
"""

ECHO_ENTRY = "- name: echo\n  kind: RealtimeAPI\n  predictor: {type: python, path: echo.py}\n"


class BatchServe:
    """Builds `project` (its files, plus echo.py and cortex.yaml = ECHO_ENTRY + batch_entries) into
    tmp/repo and serves it with its job store in tmp/jobs."""

    def __init__(self, tmp, files, batch_entries, serve_args=(), env=None):
        project = tmp / "project"
        project.mkdir()
        for name, text in {**files, "echo.py": ECHO}.items():
            (project / name).write_text(text)
        (project / "cortex.yaml").write_text(ECHO_ENTRY + batch_entries)
        self.repo = tmp / "repo"
        self.store = tmp / "jobs"
        self.serve_args = ["--job-store", str(self.store), *serve_args]
        self.env = env
        self.serve = None
        run_tritonize("build", str(project / "cortex.yaml"), "-o", str(self.repo))
        self.start()

    def start(self):
        self.serve = ServeProcess(str(self.repo), extra_args=self.serve_args, env=self.env)
        assert self.serve.wait_ready(timeout=180), self.serve.output()
        self.serve.wait_cortex()

    def exchange(self, method, path, body=None, headers=None, port=None):
        """-> (status, JSON answer or text, headers) of one request to the Cortex endpoint (or `port`)."""
        connection = http.client.HTTPConnection("127.0.0.1", port or self.serve.cortex_port, timeout=60)
        try:
            data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
            connection.request(method, path, body=data, headers=headers or {})
            response = connection.getresponse()
            text = response.read().decode()
            kind = response.getheader("content-type", "")
            answer = json.loads(text) if kind.startswith("application/json") else text
            return response.status, answer, dict(response.getheaders())
        finally:
            connection.close()
