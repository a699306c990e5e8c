"""What the production tests ask of a running deployment of tests/fixtures/production, wherever it
runs (local serve, the image's supervisor on this host, `docker run` of the built image, a pod):
one function per question, over a `call(method, port, path, body) -> (status, body bytes)` that
reaches the deployment's ports (urllib here, `podman exec` inside a pod)."""

import json
import os
import time
import urllib.error
import urllib.request

PROJECT = "production"
LABELS = ["café", "naïve → résumé", "日本"]


def urllib_call(host="127.0.0.1", ports=None):
    """call() over urllib, with a port map (container port -> published port) if any."""
    ports = ports or {}

    def call(method, port, path, body=None, timeout=30):
        request = urllib.request.Request(
            f"http://{host}:{ports.get(port, port)}{path}",
            data=body,
            method=method,
            headers={"Content-Type": "application/json"} if body is not None else {},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError as exc:
            return 0, str(exc).encode()

    return call


def wait_until(check, timeout, what, interval=0.5, log=None):
    """check() until true; fails with `what` (and log(), the deployment's output) after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s" + (f"; its log:\n{log()[-5000:]}" if log else ""))
        time.sleep(interval)


def cortex_post(call, api, payload, port=8080):
    status, body = call("POST", port, f"/{api}", json.dumps(payload).encode())
    return status, (json.loads(body) if status == 200 else body.decode("utf-8", "replace"))


def kserve_infer(call, api, payload, port=8000):
    envelope = {"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": [json.dumps(payload)]}]}
    status, body = call("POST", port, f"/v2/models/{api}/infer", json.dumps(envelope).encode())
    if status != 200:
        return status, body.decode("utf-8", "replace")
    outputs = {o["name"]: o["data"] for o in json.loads(body)["outputs"]}
    return status, json.loads(outputs["response"][0])


def without_pid(answer):
    status, body = answer
    return status, ({k: v for k, v in body.items() if k != "pid"} if isinstance(body, dict) else body)


def answers(call, cortex_port=8080, http_port=8000):
    """What a client sees from the project: comparable across local serve, docker run and the pod."""
    return {
        "labels via Cortex": [without_pid(cortex_post(call, "labels", {"i": i}, cortex_port)) for i in range(3)],
        "echo via Cortex": without_pid(cortex_post(call, "echo", {"x": [1, "ü"]}, cortex_port)),
        "echo via KServe v2": without_pid(kserve_infer(call, "echo", {"y": 2}, http_port)),
        "labels via KServe v2": without_pid(kserve_infer(call, "labels", {"i": 1}, http_port)),
        # The API whose __init__ raised: refused, the others serve.
        "broken via Cortex": cortex_post(call, "broken", {}, cortex_port)[0],
        "broken via KServe v2": kserve_infer(call, "broken", {}, http_port)[0],
    }


EXPECTED = {
    "labels via Cortex": [(200, {"label": label}) for label in LABELS],
    "echo via Cortex": (200, {"echo": {"x": [1, "ü"]}}),
    "echo via KServe v2": (200, {"echo": {"y": 2}}),
    "labels via KServe v2": (200, {"label": LABELS[1]}),
}


def check_answers(found):
    for key, value in EXPECTED.items():
        assert found[key] == value, (key, found[key])
    assert found["broken via Cortex"] != 200 and found["broken via KServe v2"] != 200, found


def child_named(parent_pid, comm):
    """The pid of parent_pid's child whose /proc comm is `comm` (no pgrep needed)."""
    from tritonize.health.stubs import read_stat

    for entry in filter(str.isdigit, os.listdir("/proc")):
        stat = read_stat(int(entry))
        if stat is not None and stat[2] == parent_pid and stat[1] == comm:
            return int(entry)
    raise AssertionError(f"no child {comm!r} of {parent_pid}")
