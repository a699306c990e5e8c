"""End to end on real Triton: queued post_predict calls hold at most what the bound says.

The queue's bound (POST_PREDICT_QUEUE_BYTES, 256 MiB) counts the memory the waiting calls hold, not
the request bytes: a 1 MiB body of `[{},{},...]` is ~24 MB of Python objects. Before, 100 such bodies
took the stub from ~44 MB to 2.4 GB.
"""

import os
import shutil

import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client
from tritonize.adapter.runtime.constants import POST_PREDICT_QUEUE_BYTES

pytestmark = pytest.mark.e2e
BODIES = 40
BODY = b"[" + b",".join([b"{}"] * (350 * 1024)) + b"]"  # 1 MiB of JSON, ~24 MiB as Python objects


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("post_predict_memory")
    shutil.copytree(os.path.join(FIXTURES, "post_predict_memory"), work / "project")
    repo = work / "model_repository"
    run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(repo))
    serve = ServeProcess(str(repo))
    assert serve.wait_ready(), serve.output()
    yield serve
    assert serve.stop() == 0, serve.output()


def test_waiting_post_predict_calls_hold_at_most_the_bound(server):
    with Client(server.http_url, timeout_s=120) as client:
        pid = client.predict("slow-post", [])["pid"]
        before = rss_bytes(pid)
        for _ in range(BODIES):  # ~40 MiB of bodies, ~1 GB as objects if all were kept
            assert client.predict_raw("slow-post", BODY, "application/json")[0]
        grown = rss_bytes(pid) - before
        print(f"stub RSS {before / 2**20:.0f} MiB -> {(before + grown) / 2**20:.0f} MiB")
        client.predict("slow-post", [], query_params={"release": "1"})
    # The bound, plus what one body in flight and the allocator keep: far below 40 x 24 MB.
    assert grown < POST_PREDICT_QUEUE_BYTES + 150 * 2**20, f"the stub grew by {grown / 2**20:.0f} MiB"
    assert "post_predict is falling behind" in server.output()
