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
    body = json.dumps({"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES",
                                   "data": [json.dumps({"x": 1})]}]}).encode()
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
    print(f"{len(events)} requests, {len(errors)} errors; before SIGTERM by replica: "
          f"{collections.Counter((p, r) for _, p, r in before)}")
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
    retried = [line for line in cluster.access_log() if "," in line.split(" ", 1)[1]]
    print(f"nginx retried {len(retried)} requests on another replica; load ran {end - killed_at:.1f}s after SIGTERM")
