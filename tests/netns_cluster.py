"""Replicas on one machine: each `tritonize serve` in its own network namespace (its own host
address, behind a veth pair), nginx in the root namespace balancing HTTP and gRPC over them, and a
readiness watcher that takes a replica out of nginx's upstreams when /v2/health/ready fails (what
Kubernetes' endpoints controller does for a Service). Used by tests/test_e2e_replicas.py."""

import contextlib
import glob
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

NGINX_CONF = """
user root;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format up '$status $upstream_addr $upstream_status';
    access_log {tmp}/access.log up;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream triton_http {{
{http_servers}
        keepalive 16;
    }}
    upstream triton_grpc {{
{grpc_servers}
    }}
    server {{
        listen 127.0.0.1:{http_port};
        location / {{
            proxy_pass http://triton_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            # Inference is a POST: retrying it on another replica must be allowed explicitly.
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 3;
        }}
    }}
    server {{
        listen 127.0.0.1:{grpc_port} http2;
        location / {{
            grpc_pass grpc://triton_grpc;
            grpc_connect_timeout 1s;
            grpc_next_upstream error timeout http_502 http_503 non_idempotent;
            grpc_next_upstream_tries 3;
        }}
    }}
}}
"""


def _run(*args):
    subprocess.run(args, check=True, capture_output=True, timeout=30)


class Replica:
    def __init__(self, index, namespace, address, process, log_path):
        self.index, self.namespace, self.address = index, namespace, address
        self.process, self.log_path = process, log_path
        self.in_rotation = True

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://{self.address}:8000/v2/health/ready", timeout=0.5) as r:
                return r.status == 200
        except OSError:
            return False


class Cluster:
    def __init__(self, repository, tmp, count=3, http_port=None, grpc_port=None):
        self.repository, self.tmp, self.count = repository, str(tmp), count
        self.http_port, self.grpc_port = http_port, grpc_port
        pid = os.getpid()
        self.tag = f"tz{pid % 100000}"
        # A private /24 of our own: 10.A.B.0, four addresses (a /30) per replica.
        self.net = f"10.{100 + (pid // 250) % 100}.{pid % 250}"
        self.replicas, self.nginx = [], None
        self.namespaces, self._watch_stop = [], threading.Event()
        self.removed_at = {}

    def start(self):
        for i in range(self.count):
            ns, host_if = f"{self.tag}r{i}", f"{self.tag}v{i}"
            root_ip, ns_ip = f"{self.net}.{4 * i + 1}", f"{self.net}.{4 * i + 2}"
            _run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run("ip", "addr", "add", f"{root_ip}/30", "dev", host_if)
            _run("ip", "link", "set", host_if, "up")
            _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", "eth0")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            log_path = os.path.join(self.tmp, f"replica{i}.log")
            with open(log_path, "w") as log:
                process = subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        sys.executable,
                        "-m",
                        "tritonize.cli",
                        "serve",
                        self.repository,
                        "--host",
                        ns_ip,
                        "--http-port",
                        "8000",
                        "--grpc-port",
                        "8001",
                        "--metrics-port",
                        "8002",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, "TRITONIZE_TEST_REPLICA": str(i)},
                )
            self.replicas.append(Replica(i, ns, ns_ip, process, log_path))
        deadline = time.monotonic() + 120
        for replica in self.replicas:
            while not replica.ready():
                if replica.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"replica {replica.index} did not start:\n{self.log(replica)}")
                time.sleep(0.2)
        self._write_nginx_conf()
        self.nginx_log = open(os.path.join(self.tmp, "nginx.out"), "w")
        self.nginx = subprocess.Popen(
            ["nginx", "-c", self.conf_path, "-p", self.tmp],
            stdout=self.nginx_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(self.tmp, "nginx.pid")):
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start: {self._read('nginx.out')}{self._read('error.log')}")
            time.sleep(0.1)
        threading.Thread(target=self._watch_readiness, daemon=True).start()

    @property
    def conf_path(self):
        return os.path.join(self.tmp, "nginx.conf")

    def _write_nginx_conf(self):
        def servers(port):
            return "\n".join(
                f"        server {r.address}:{port} max_fails=1 fail_timeout=2s{'' if r.in_rotation else ' down'};"
                for r in self.replicas
            )

        with open(self.conf_path, "w") as f:
            f.write(
                NGINX_CONF.format(
                    tmp=self.tmp,
                    http_port=self.http_port,
                    grpc_port=self.grpc_port,
                    http_servers=servers(8000),
                    grpc_servers=servers(8001),
                )
            )

    def _watch_readiness(self):
        """Endpoints controller: a replica whose readiness fails leaves the upstreams (nginx reload)."""
        while not self._watch_stop.is_set():
            for replica in self.replicas:
                if replica.in_rotation and not replica.ready():
                    replica.in_rotation = False
                    self.removed_at[replica.index] = time.monotonic()
                    self._write_nginx_conf()
                    self.nginx.send_signal(signal.SIGHUP)
            time.sleep(0.1)

    def terminate(self, index):
        """SIGTERM one replica's `tritonize serve` (Kubernetes' pod deletion); returns the time."""
        self.replicas[index].process.send_signal(signal.SIGTERM)
        return time.monotonic()

    def kill(self, index):
        """SIGKILL one replica's tritonserver and stubs, then serve (a crash, or a node lost). tritonserver
        runs in its own process group and would get SIGTERM (a graceful drain) if only serve died."""
        pid = self.replicas[index].process.pid
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for child in children:
            try:
                os.killpg(os.getpgid(int(child)), signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.killpg(pid, signal.SIGKILL)
        # A crashed node leaves its stubs' shared memory behind; here the "node" is this machine, so tidy it.
        for region in glob.glob(f"/dev/shm/tritonize{pid}_*"):
            with contextlib.suppress(OSError):
                os.unlink(region)
        return time.monotonic()

    def _read(self, name):
        path = os.path.join(self.tmp, name)
        return open(path).read() if os.path.exists(path) else ""

    def log(self, replica):
        with open(replica.log_path) as f:
            return f.read()

    def access_log(self):
        return self._read("access.log").splitlines()

    def stop(self):
        self._watch_stop.set()
        if self.nginx and self.nginx.poll() is None:
            self.nginx.terminate()
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.nginx.pid, signal.SIGKILL)
        for replica in self.replicas:
            if replica.process.poll() is None:
                try:
                    os.killpg(replica.process.pid, signal.SIGTERM)
                    replica.process.wait(30)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(replica.process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        for ns in self.namespaces:  # deleting a namespace deletes its veth pair too
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
