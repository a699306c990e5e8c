"""The liveness verdict: Triton is live, no instance process of it died, no API is stuck.

Where tritonize's supervisor runs (serve; an image from `tritonize docker build`), it heals a dead
instance in seconds and its health endpoint answers the probes (server/container.py). Where it does
not (a stock Triton image reading the repository from object storage, `deploy k8s --model-store`),
this check is the pod's exec liveness probe: a dead stub stays a zombie child of tritonserver (PID 1
in that container), so the probe fails and the kubelet restarts the container, which reloads every
model. deploy/liveness.py runs this very module there (its source, loaded as a package).

A stuck API (health/stuck.py) spans probes: each run keeps what it saw in a small state file.
"""

import argparse
import json
import os
import sys
import time
import urllib.request

from .stubs import stub_processes
from .stuck import StuckDetector, queue_samples, stuck_after_s

DEFAULT_STATE = "/tmp/tritonize-liveness.json"
# Loopback never goes through the pod's http_proxy.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url, timeout=3.0):
    with _DIRECT.open(url, timeout=timeout) as response:
        return response.read().decode("utf-8", "replace")


def dead_stubs(triton_pid, proc="/proc"):
    """Pids of tritonserver's dead instance processes (health/stubs.py: any zombie stub is a crash)."""
    return sorted(stub_processes(triton_pid, proc)[1])


def stuck_apis(metrics_text, state_path, after_s, now=None):
    """[description] of the APIs stuck for after_s, judged with what earlier probes saw (state_path)."""
    now = time.time() if now is None else now
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        state = {}
    detector = StuckDetector(after_s, state if isinstance(state, dict) else {})
    samples = queue_samples(metrics_text)
    stuck = detector.update(samples, now)
    try:
        with open(state_path, "w", encoding="utf-8") as f:
            json.dump(detector.state(), f)
    except OSError:
        pass
    return [f"{model} ({samples[model][0]} waiting, none finished for {s:.0f} s)" for model, s in stuck.items()]


def check(live_url, metrics_url, triton_pid, state_path=DEFAULT_STATE, after_s=None, proc="/proc"):
    """-> the reasons this server is not live ([] when it is)."""
    try:
        fetch(live_url)
    except Exception as exc:  # any failure to answer is "not live"
        return [f"not live: {live_url}: {exc}"]
    dead = dead_stubs(triton_pid, proc)
    if dead:
        return [f"instance process(es) {', '.join(map(str, dead))} of tritonserver died; restart to reload the models"]
    try:
        text = fetch(metrics_url)
    except Exception:
        return []  # metrics unreachable: no verdict on stuck APIs
    stuck = stuck_apis(text, state_path, stuck_after_s() if after_s is None else after_s)
    return [f"stuck API(s): {', '.join(stuck)}; restart to get them answering"] if stuck else []


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tritonize-liveness")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--triton-pid", type=int, default=int(os.environ.get("TRITONIZE_TRITON_PID", "1")))
    parser.add_argument("--state", default=os.environ.get("TRITONIZE_LIVENESS_STATE", DEFAULT_STATE))
    args = parser.parse_args(argv)
    live_url = os.environ.get("TRITONIZE_LIVE_URL", f"http://127.0.0.1:{args.http_port}/v2/health/live")
    problems = check(live_url, f"http://127.0.0.1:{args.metrics_port}/metrics", args.triton_pid, args.state)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
