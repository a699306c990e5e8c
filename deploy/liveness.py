"""The Kubernetes liveness check: Triton is live AND none of its instance processes has died.

Triton 2.51 keeps a model READY when its python-backend stub dies and never restarts it;
locally `serve`'s watchdog reloads the model (server/watchdog.py). In a pod there is no
watchdog, so the liveness probe runs this check (python3 is in every Triton image): a dead
stub stays a zombie child of tritonserver (PID 1 in the container), so the probe fails and
the kubelet restarts the container, which reloads every model.
"""

# Standard library only; run as `python3 -c LIVENESS_SCRIPT` inside the Triton container.
LIVENESS_SCRIPT = """\
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
"""


def liveness_command(http_port=8000):
    script = LIVENESS_SCRIPT.replace("127.0.0.1:8000", f"127.0.0.1:{http_port}")
    return ["python3", "-c", script]
