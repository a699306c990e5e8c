"""Playing generated Kubernetes manifests as real pods with podman (no cluster on these machines).

`podman kube play` runs a Deployment's pod template for real: image, args, env, ports, volumes,
securityContext. What a cluster would do differently is rewritten in a COPY of the manifest only
(see docs/production.md, "Trying the manifests without a cluster"): secretKeyRef -> a literal value,
ports dropped (--network none) and named probe ports -> numbers, restartPolicy Never (a dead
container stays for inspection), emptyDirs -> world-writable host folders (as a cluster makes them).
Probes are not run by podman: probe() runs them as the kubelet would (httpGet from inside the pod,
exec with `podman exec`).
"""

import base64
import copy
import json
import os
import shutil
import subprocess

import yaml

# The sandbox refuses rlimits at their hard values (podman sets NOFILE/NPROC); crun fails on these cgroups.
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""


def podman_env(folder):
    """The environment for podman with a containers.conf of our own (never /etc's)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "containers.conf")
    with open(path, "w") as f:
        f.write(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": path}


def podman_unavailable(env):
    """Why pods cannot be played here (None if they can)."""
    if shutil.which("podman") is None:
        return "podman is not installed (.ci/run installs it: apt-get install podman catatonit)"
    try:
        info = subprocess.run(["podman", "info"], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman info failed: {exc}"
    return None if info.returncode == 0 else f"podman info failed: {info.stderr.strip()[-300:]}"


def podman(env, *args, check=True, timeout=120, **kwargs):
    result = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])}...: {result.stderr[-2000:]}")
    return result


def played_copy(documents, suffix, folder, token="pod-token"):
    """The Deployment of `documents` rewritten for podman; -> (pod spec dict for kube play, its pod name).
    Each emptyDir becomes a world-writable folder under `folder` (a cluster's emptyDir is 0777; podman's
    volumes are root's, which a non-root container cannot write)."""
    (deployment,) = [copy.deepcopy(d) for d in documents if d and d.get("kind") == "Deployment"]
    deployment["metadata"]["name"] = name = f"{deployment['metadata']['name']}-{suffix}"
    pod = deployment["spec"]["template"]["spec"]
    pod["restartPolicy"] = "Never"
    renamed = {v["name"]: f"{name}-{v['name']}" for v in pod.get("volumes", [])}
    for volume in pod.get("volumes", []):
        volume["name"] = renamed[volume["name"]]
        if "emptyDir" in volume:
            volume.pop("emptyDir")
            path = os.path.join(folder, "volumes", volume["name"])
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o1777)
            volume["hostPath"] = {"path": path, "type": "Directory"}
    for container in pod["containers"]:
        for env in container.get("env", []):
            if "secretKeyRef" in env.get("valueFrom", {}):
                env.pop("valueFrom")
                env["value"] = token
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed[mount["name"]]
        # podman 4.3 publishes containerPorts on the host, which --network none refuses: the copy
        # drops them (the pod's containers share its loopback), so named probe ports become numbers.
        numbers = {p["name"]: p["containerPort"] for p in container.pop("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            action = container.get(probe, {}).get("httpGet") or container.get(probe, {}).get("tcpSocket")
            if action and isinstance(action.get("port"), str):
                action["port"] = numbers[action["port"]]
    return deployment, f"{name}-pod-0"


class PlayedPod:
    """A pod played from a Deployment copy; remove() takes away the pod and its volumes, also on failure."""

    def __init__(self, env, folder, deployment, pod_name):
        self.env, self.folder, self.deployment, self.name = env, folder, deployment, pod_name
        self.path = os.path.join(folder, f"{pod_name}.yaml")
        with open(self.path, "w") as f:
            yaml.safe_dump(deployment, f, sort_keys=False)
        self.volumes = [v["name"] for v in deployment["spec"]["template"]["spec"].get("volumes", [])]

    def play(self):
        podman(self.env, "kube", "play", "--network", "none", self.path, timeout=300)
        return self

    def container(self, name="tritonserver"):
        return f"{self.name}-{name}"

    def spec(self, name="tritonserver"):
        (found,) = [c for c in self.deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
        return found

    def state(self, name="tritonserver"):
        result = podman(self.env, "inspect", self.container(name), "--format", "{{.State.Status}} {{.State.Pid}}")
        status, pid = result.stdout.split()
        return status, int(pid)

    def exec(self, *command, container="tritonserver", timeout=60):
        return podman(self.env, "exec", self.container(container), *command, check=False, timeout=timeout)

    def logs(self, container="tritonserver"):
        result = podman(self.env, "logs", self.container(container), check=False)
        return result.stdout + result.stderr

    def call(self, method, port, path, body=None, timeout=30):
        """An HTTP request from inside the pod (its network is its own loopback only)."""
        program = (
            "import base64, sys, urllib.request, urllib.error\n"
            "m, url, body = sys.argv[1], sys.argv[2], base64.b64decode(sys.argv[3]) if sys.argv[3] else None\n"
            "req = urllib.request.Request(url, data=body, method=m, headers={'Content-Type': 'application/json'})\n"
            "try:\n"
            f"    r = urllib.request.urlopen(req, timeout={timeout}); s, b = r.status, r.read()\n"
            "except urllib.error.HTTPError as e:\n"
            "    s, b = e.code, e.read()\n"
            "except OSError as e:\n"
            "    s, b = 0, str(e).encode()\n"
            "print(s, base64.b64encode(b).decode())\n"
        )
        encoded = base64.b64encode(body).decode() if body is not None else ""
        result = self.exec("python3", "-c", program, method, f"http://127.0.0.1:{port}{path}", encoded)
        if result.returncode != 0:
            return 0, result.stderr.encode()
        status, data = (result.stdout.split() + [""])[:2]
        return int(status), base64.b64decode(data)

    def probe(self, which, name="tritonserver"):
        """Run a container's probe as the kubelet would: True if it passes."""
        spec = self.spec(name)[which]
        if "httpGet" in spec:
            status, _ = self.call("GET", spec["httpGet"]["port"], spec["httpGet"]["path"])
            return 200 <= status < 400
        if "exec" in spec:
            return self.exec(*spec["exec"]["command"], container=name).returncode == 0
        raise AssertionError(f"{which}: no probe action this test knows: {json.dumps(spec)}")

    def remove(self):
        podman(self.env, "kube", "down", self.path, check=False, timeout=120)
        podman(self.env, "pod", "rm", "--force", self.name, check=False, timeout=120)
        for volume in self.volumes:
            podman(self.env, "volume", "rm", "--force", volume, check=False)
