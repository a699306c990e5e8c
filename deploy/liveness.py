"""The Kubernetes liveness check: Triton is live AND none of its instance processes has died.

Triton 2.51 keeps a model READY when its python-backend stub dies and never restarts it;
locally `serve`'s watchdog reloads the model (server/watchdog.py). In a pod there is no
watchdog, so the liveness probe runs this check (python3 is in every Triton image): a dead
stub stays a zombie child of tritonserver (PID 1 in the container), so the probe fails and
the kubelet restarts the container, which reloads every model.

It also fails for a stuck API (server/stuck.py: requests wait and none finishes for
TRITONIZE_STUCK_AFTER_S, default 300 s): each run keeps what it saw in a small state file, so
the rule spans probes.
"""

from tritonize.server.stuck import DEFAULT_STUCK_AFTER_S, STUCK_AFTER_ENV

# Standard library only; run as `python3 -c LIVENESS_SCRIPT` inside the Triton container.
LIVENESS_SCRIPT = r"""\
import os, sys, urllib.request
url = os.environ.get("TRITONIZE_LIVE_URL", "http://127.0.0.1:8000/v2/health/live")
parent = int(os.environ.get("TRITONIZE_TRITON_PID", "1"))
try:
    # Loopback never goes through the pod's http_proxy.
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=3).close()
except Exception as exc:
    sys.exit("not live: %s: %s" % (url, exc))
dead = []
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
            comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        except (OSError, IndexError, ValueError):
            continue
        # Only a python-backend stub (comm: its name cut to 15 characters) counts; other children
        # of tritonserver (a predictor's own subprocess re-parented to it) do not.
        if fields[0] in ("Z", "X") and int(fields[1]) == parent and comm == "triton_python_b":
            dead.append(entry)
if dead:
    sys.exit("instance process(es) %s of tritonserver died; restart to reload the models" % ", ".join(dead))
import json, re, time
metrics = os.environ.get("TRITONIZE_METRICS_URL", "http://127.0.0.1:8002/metrics")
state_path = os.environ.get("TRITONIZE_LIVENESS_STATE", "/tmp/tritonize-liveness.json")
after = float(os.environ.get("STUCK_AFTER_ENV", "DEFAULT_STUCK_AFTER_S"))
try:
    text = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(metrics, timeout=3).read().decode()
except Exception:
    text = ""  # metrics unreachable: no verdict on stuck APIs
samples = {}
sample = re.compile(r'^nv_inference_(pending_request_count|exec_count)\{[^}]*model="([^"]*)"[^}]*\} (\S+)', re.M)
for kind, model, value in sample.findall(text):
    pending, executions = samples.get(model, (0, 0))
    if kind == "exec_count":
        samples[model] = (pending, executions + int(float(value)))
    else:
        samples[model] = (pending + int(float(value)), executions)
try:
    with open(state_path) as f:
        seen = json.load(f)
except Exception:
    seen = {}
now, kept, stuck = time.time(), {}, []
for model, (pending, executions) in samples.items():
    if pending > 0 and model in seen and seen[model][0] == executions:
        kept[model] = seen[model]
        if now - seen[model][1] >= after:
            stuck.append("%s (%d waiting, none finished for %d s)" % (model, pending, now - seen[model][1]))
    elif pending > 0:
        kept[model] = [executions, now]
try:
    with open(state_path, "w") as f:
        json.dump(kept, f)
except OSError:
    pass
if stuck:
    sys.exit("stuck API(s): %s; restart to get them answering" % ", ".join(stuck))
"""
LIVENESS_SCRIPT = LIVENESS_SCRIPT.replace("STUCK_AFTER_ENV", STUCK_AFTER_ENV).replace(
    "DEFAULT_STUCK_AFTER_S", str(DEFAULT_STUCK_AFTER_S)
)


def liveness_command(http_port=8000, metrics_port=8002):
    script = LIVENESS_SCRIPT.replace("127.0.0.1:8000", f"127.0.0.1:{http_port}")
    script = script.replace("127.0.0.1:8002", f"127.0.0.1:{metrics_port}")
    return ["python3", "-c", script]
