"""A small stand-in for the Cortex endpoint's job routes (Cortex's job API, BRIEF contract item 4), for the
unit tests of the job client and `tritonize job`: each GET of a running job advances it by one batch."""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeJobEndpoint:
    def __init__(self, api="batcher", final_status="status_succeeded", fail_batches=0):
        self.api = api
        self.final_status = final_status
        self.fail_batches = fail_batches
        self.jobs = {}  # job_id -> job_status
        self.submissions = []  # (query, body) of each POST
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _advance(self, job):
        if job["status"] != "status_running":
            return
        metrics = job["batch_metrics"]  # failed: dead-lettered batches, as the engine counts them
        done = metrics["succeeded"] + metrics["failed"]
        if done < job["total_batch_count"] - self.fail_batches:
            metrics["succeeded"] += 1
        elif done < job["total_batch_count"]:
            metrics["failed"] += 1
            job["failed_attempts"] += 1
        job["batches_in_queue"] = job["total_batch_count"] - metrics["succeeded"] - metrics["failed"]
        if job["batches_in_queue"] == 0:
            job["status"] = self.final_status
            job["end_time"] = "2026-12-05T01:00:09Z"

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body, content_type="application/json"):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self):
                url = urllib.parse.urlsplit(self.path)
                return url.path, dict(urllib.parse.parse_qsl(url.query))

            def do_POST(self):
                path, query = self._route()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.submissions.append((query, body))
                if path != f"/{fake.api}":
                    return self._send(404, {"error": f"no API at {path}"})
                if "workers" not in body:
                    return self._send(400, {"error": "workers: required"})
                items = body.get("item_list", {}).get("items", [])
                size = body.get("item_list", {}).get("batch_size", 1)
                total = -(-len(items) // size)
                if query.get("dryRun") == "true":
                    return self._send(200, f"{total} batches\nvalidations passed", "text/plain")
                with fake.lock:
                    job_id = f"job{len(fake.jobs) + 1:04d}"
                    spec = {
                        "job_id": job_id,
                        "api_name": fake.api,
                        "kind": "BatchAPI",
                        "workers": body["workers"],
                        "config": body.get("config", {}),
                        "created_time": "2026-12-05T01:00:00Z",
                    }
                    fake.jobs[job_id] = {
                        **spec,
                        "status": "status_running",
                        "total_batch_count": total,
                        "batches_in_queue": total,
                        "batch_metrics": {"succeeded": 0, "failed": 0, "average_time_per_batch": None},
                        "failed_attempts": 0,
                        "start_time": "2026-12-05T01:00:00Z",
                    }
                return self._send(200, spec)

            def do_GET(self):
                path, query = self._route()
                if path == "/_tritonize/metrics":
                    lines = ["# TYPE tritonize_batch_job_batches gauge"]
                    for job in fake.jobs.values():
                        for state, value in (("succeeded", job["batch_metrics"]["succeeded"]),
                                             ("dead_lettered", job["batch_metrics"]["failed"])):  # fmt: skip
                            labels = f'api="{fake.api}",job_id="{job["job_id"]}",state="{state}"'
                            lines.append(f"tritonize_batch_job_batches{{{labels}}} {value}")
                    return self._send(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
                if path.startswith("/_tritonize/jobs/"):
                    _, _, _, api, job_id, _ = path.split("/")
                    if job_id not in fake.jobs:
                        return self._send(404, {"error": f"no job {job_id}"})
                    return self._send(200, f"{job_id}: batch 0 succeeded\n{job_id}: ended\n", "text/plain")
                if path == "/realtime":  # a RealtimeAPI's GET: Cortex's summary
                    return self._send(200, {"message": "make a prediction by sending a post request to this endpoint"})
                if path != f"/{fake.api}":
                    return self._send(404, {"error": f"no API at {path}"})
                with fake.lock:
                    if "jobID" not in query:
                        return self._send(200, {"jobs": sorted(fake.jobs.values(), key=lambda j: j["job_id"])[::-1]})
                    job = fake.jobs.get(query["jobID"])
                    if job is None:
                        return self._send(404, {"error": f"unknown job {query['jobID']}"})
                    fake._advance(job)
                    return self._send(
                        200, {"job_status": job, "endpoint": f"http://{fake.url}/{fake.api}", "api_spec": {}}
                    )

            def do_DELETE(self):
                path, query = self._route()
                job = fake.jobs.get(query.get("jobID", ""))
                if job is None:
                    return self._send(404, {"error": f"unknown job {query.get('jobID')}"})
                job["status"] = "status_stopped"
                return self._send(200, {"message": f"stopped job {job['job_id']}"})

        return Handler
