"""Three `tritonize serve` replicas as separate hosts (network namespaces) behind nginx (HTTP and
gRPC): load spreads over all three; one replica is terminated mid-load, drains, leaves rotation
when its readiness fails, and no request is lost (nginx retries what hit it while it went away)."""

import collections
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import FIXTURES, free_ports, run_tritonize
from netns_cluster import Cluster

pytestmark = pytest.mark.e2e
SPEC = os.path.join(FIXTURES, "replica", "cortex.yaml")


def _require_tools():
    missing = [tool for tool in ("ip", "nginx") if not shutil.which(tool)]
    assert not missing, f"{missing} not installed (.ci/run installs them)"
    assert os.geteuid() == 0, "network namespaces need root"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _require_tools()
    tmp = tmp_path_factory.mktemp("replicas")
    repo = str(tmp / "repo")
    run_tritonize("build", SPEC, "-o", repo)
    http_port, grpc_port = free_ports(2)
    c = Cluster(repo, tmp, count=3, http_port=http_port, grpc_port=grpc_port)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def http_predict(port):
    body = json.dumps(
        {"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": [json.dumps({"x": 1})]}]}
    ).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/replica/infer", data=body)
    with urllib.request.urlopen(request, timeout=15) as response:
        outputs = {o["name"]: o["data"][0] for o in json.load(response)["outputs"]}
    return json.loads(outputs["response"])["replica"]


def grpc_client(port):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")

    def predict():
        inp = grpcclient.InferInput("payload", [1, 1], "BYTES")
        inp.set_data_from_numpy(np.array([[json.dumps({"x": 2}).encode()]], dtype=np.object_))
        result = client.infer("replica", [inp], client_timeout=15)
        return json.loads(result.as_numpy("response")[0, 0])["replica"]

    return client, predict


class Load:
    """Bounded closed-loop load: HTTP workers and gRPC workers, each recording (time, replica or error)."""

    def __init__(self, cluster, http_workers=4, grpc_workers=2):
        self.cluster, self.events, self.lock = cluster, [], threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._http) for _ in range(http_workers)]
        self.threads += [threading.Thread(target=self._grpc) for _ in range(grpc_workers)]

    def _record(self, protocol, outcome):
        with self.lock:
            self.events.append((time.monotonic(), protocol, outcome))

    def _http(self):
        while not self.stop.is_set():
            try:
                self._record("http", http_predict(self.cluster.http_port))
            except (OSError, urllib.error.HTTPError, ValueError) as exc:
                self._record("http", f"error: {exc}")

    def _grpc(self):
        client, predict = grpc_client(self.cluster.grpc_port)
        try:
            while not self.stop.is_set():
                try:
                    self._record("grpc", predict())
                except Exception as exc:  # InferenceServerException and transport errors: counted
                    self._record("grpc", f"error: {exc}")
        finally:
            client.close()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def test_load_spreads_then_a_terminated_replica_drains_without_losing_requests(cluster):
    with Load(cluster) as load:
        time.sleep(3.0)
        killed_at = cluster.terminate(1)
        time.sleep(4.0)
    end = time.monotonic()
    events = load.events
    errors = [e for e in events if str(e[2]).startswith("error")]
    before = [e for e in events if e[0] < killed_at]
    print(
        f"{len(events)} requests, {len(errors)} errors; before SIGTERM by replica: "
        f"{collections.Counter((p, r) for _, p, r in before)}"
    )
    # 1. Spread: every replica answered HTTP and gRPC requests while all three were up.
    for protocol in ("http", "grpc"):
        share = collections.Counter(r for _, p, r in before if p == protocol)
        assert set(share) == {"0", "1", "2"}, (protocol, share)
        assert min(share.values()) >= 0.1 * sum(share.values()), (protocol, share)
    # 2. No request lost: nginx retried whatever reached the replica as it went away.
    assert errors == [], errors[:5]
    # 3. Readiness turned it away: it left rotation soon after SIGTERM, and answered nothing
    #    that started after that (+ the time one in-flight request takes).
    assert 1 in cluster.removed_at and cluster.removed_at[1] - killed_at < 3.0, cluster.removed_at
    late = [e for e in events if e[2] == "1" and e[0] > cluster.removed_at[1] + 1.0]
    assert late == [], late[:5]
    after = collections.Counter(r for t, _, r in events if t > cluster.removed_at[1] + 1.0)
    assert set(after) == {"0", "2"} and sum(after.values()) > 50, after
    # 4. It drained and exited cleanly (tritonize serve's SIGTERM path), within the grace period.
    replica = cluster.replicas[1]
    assert replica.process.wait(timeout=30) == 0, cluster.log(replica)
    answered_after_sigterm = sum(1 for t, _, r in events if r == "1" and t > killed_at)
    print(
        f"left rotation {cluster.removed_at[1] - killed_at:.2f}s after SIGTERM; answered {answered_after_sigterm} "
        f"requests in flight meanwhile; load ran {end - killed_at:.1f}s after SIGTERM"
    )


def test_a_crashed_replica_costs_only_retries(cluster):
    """SIGKILL of tritonserver (no drain): requests in flight on it fail at the TCP level; nginx retries
    the HTTP ones."""
    assert cluster.replicas[1].process.poll() is not None  # the previous test took replica 1 away
    before = len(cluster.access_log())
    with Load(cluster) as load:
        time.sleep(1.5)
        cluster.kill(2)
        time.sleep(2.5)
    errors = [e for e in load.events if str(e[2]).startswith("error")]
    lines = cluster.access_log()[before:]
    retried = [line for line in lines if "," in line.split(" ", 1)[1]]
    print(f"{len(load.events)} requests, {len(errors)} errors, nginx retried {len(retried)}: {retried[:3]}")
    # HTTP: nginx buffered each request body, so it re-sent what was in flight on the dead replica.
    assert [e for e in errors if e[1] == "http"] == []
    assert retried and all(line.startswith("200 ") for line in retried), retried
    # gRPC: grpc_pass streams the request body, so nginx cannot re-send a call already sent to the
    # dead replica: at most the calls in flight there (one per gRPC worker) fail, as UNAVAILABLE,
    # which gRPC clients can retry. Nothing else fails.
    grpc_errors = [e for e in errors if e[1] == "grpc"]
    assert len(grpc_errors) <= 2 and all("UNAVAILABLE" in e[2] for e in grpc_errors), grpc_errors
    after = collections.Counter(r for t, _, r in load.events if t > cluster.removed_at.get(2, float("inf")) + 1.0)
    assert set(after) == {"0"}, after
