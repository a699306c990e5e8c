"""End to end on real Triton: the Cortex endpoint as a public HTTP server, against hostile clients and
unusual predictors (issue 23: response splitting, backpressure, pipelining, slowloris, header limits,
gzip members, 2xx statuses, shutdown, the request timeout, proxies, the admin token)."""

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from conftest import FIXTURES, ServeProcess, free_ports, run_tritonize

pytestmark = pytest.mark.e2e
TOKEN = "edge-secret-token-1234"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    work = tmp_path_factory.mktemp("cortex_edge")
    project = work / "project"
    shutil.copytree(os.path.join(FIXTURES, "cortex_edge"), project)
    repository = work / "model_repository"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repository))
    return repository


@pytest.fixture(scope="module")
def server(repo):
    # A dead proxy in serve's environment: nothing of serve's own may go through it (item 11).
    (dead,) = free_ports(1)
    proxy = f"http://127.0.0.1:{dead}"
    env = {"http_proxy": proxy, "https_proxy": proxy, "grpc_proxy": proxy, "TRITONIZE_ADMIN_TOKEN": TOKEN}
    serve = ServeProcess(str(repo), extra_args=["--max-body-size", "1m", "--request-timeout", "5s"], env=env)
    serve.cortex = f"http://127.0.0.1:{serve.cortex_port}"
    serve.proxy_env = env
    assert serve.wait_ready(), serve.output()
    serve.wait_cortex()
    yield serve
    assert serve.stop() == 0, serve.output()


def _raw(port, data, timeout=20, read_until=None):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        got = b""
        while True:
            try:
                piece = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not piece:
                break
            got += piece
            if read_until is not None and read_until in got:
                break
        return got
    finally:
        sock.close()


def _post(path, body=b"{}", extra=b"", close=True):
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n%s" % (
        path,
        len(body),
        extra,
        b"Connection: close\r\n" if close else b"",
        body,
    )


def _rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:  # gone
        pass
    return 0


def _endpoint_pids(serve_pid):
    """The endpoint's processes: serve's child running tritonize.cortex_endpoint, and its forked workers."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"tritonize.cortex_endpoint" in cmdline:
            pids.append((int(pid), ppid))
    first = [pid for pid, ppid in pids if ppid == serve_pid]
    return first + [pid for pid, ppid in pids if ppid in first]


# 1. Response splitting
def test_a_header_injected_by_a_predictor_never_reaches_the_client(server):
    got = _raw(server.cortex_port, _post(b"/edge?do=split"))
    head = got.split(b"\r\n\r\n", 1)[0].lower()
    assert b"set-cookie" not in head, got
    assert got.startswith(b"HTTP/1.1 500"), got
    got = _raw(server.cortex_port, _post(b"/edgestream?do=split"))
    assert b"set-cookie" not in got.split(b"\r\n\r\n", 1)[0].lower(), got
    assert got.startswith(b"HTTP/1.1 500"), got
    assert requests.post(f"{server.cortex}/edge", json={"still": "up"}).json()["payload"] == {"still": "up"}


# 8. A predictor's 2xx status
@pytest.mark.parametrize("status", [201, 202, 204, 206])
def test_a_predictors_2xx_status_reaches_the_client(server, status):
    r = requests.post(f"{server.cortex}/edge?do=status&s={status}", json={})
    assert r.status_code == status, r.text
    assert r.content == (b"" if status == 204 else b"made")
    # On Triton's own /infer the answer is 200 (its protocol has no place for it).
    from tritonize.client.client import Client

    with Client(server.http_url) as client:
        assert client.predict_raw("edge", b"{}", "application/json", {"do": "status", "s": status})[0] == b"made"


def test_a_streams_2xx_status_reaches_the_client(server):
    r = requests.post(f"{server.cortex}/edgestream?do=status", json={})
    assert (r.status_code, r.content) == (201, b"made")


# 7. gzip members
def test_every_gzip_member_is_inflated_and_trailing_garbage_is_a_400(server):
    body = gzip.compress(b'"hello ') + gzip.compress(b'world"')
    r = requests.post(
        f"{server.cortex}/edge", data=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert (r.status_code, r.json()["payload"]) == (200, "hello world")
    r = requests.post(
        f"{server.cortex}/edge",
        data=gzip.compress(b'"x"') + b"garbage",
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "gzip" in r.text


# 5. Headers of 16-64 KB
@pytest.mark.parametrize("size", [13_000, 16_000, 40_000, 63_000])
def test_big_header_blocks_are_431_at_the_endpoint(server, size):
    for api in (b"/edge", b"/edgestream"):
        got = _raw(server.cortex_port, _post(api, extra=b"X-Big: " + b"a" * size + b"\r\n"))
        assert got.startswith(b"HTTP/1.1 431"), got[:200]


def test_headers_under_the_limits_reach_the_predictor(server):
    from tritonize.cortex_endpoint.server import MAX_HEADER_LINE_BYTES
    from tritonize.cortex_endpoint.streaming import MAX_METADATA_BYTES

    many = {f"X-H{i}": "b" * 4000 for i in range(6)}  # 24 KB in all: Triton's HTTP port takes it
    for api, headers in (
        ("edge", {"X-Big": "a" * (MAX_HEADER_LINE_BYTES - 10)}),
        ("edge", many),
        ("edgestream", {"X-Big": "a" * (MAX_METADATA_BYTES - 200)}),
    ):
        r = requests.post(f"{server.cortex}/{api}", json={}, headers=headers)
        assert r.status_code == 200, (api, r.status_code, r.text[:300])
        seen = r.json()["headers"] if api == "edge" else json.loads(r.text)
        assert all(seen[name.lower()] == value for name, value in headers.items())
    # More than gRPC metadata carries, to a streaming API: a clear 431, never Triton's 503.
    r = requests.post(f"{server.cortex}/edgestream", json={}, headers=many)
    assert r.status_code == 431 and "streaming API" in r.text


# 6. Headers gRPC metadata cannot carry, sent to a streaming API
def test_odd_headers_always_get_an_answer_and_the_same_on_both_kinds_of_api(server):
    odd = b"X-Data-Bin: aGVsbG8=\r\nX-A!B: 1\r\nX_Under: 2\r\nX-Fine: ok\r\n"
    seen = {}
    for api in (b"/edge", b"/edgestream"):
        got = _raw(server.cortex_port, _post(api + b"?do=headers", extra=odd))
        assert got.startswith(b"HTTP/1.1 200"), got
        body = got.split(b"\r\n\r\n", 1)[1]
        if api == b"/edgestream":  # chunked: one chunk
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        document = json.loads(body)
        seen[api] = document["headers"] if api == b"/edge" else document
    assert seen[b"/edge"] == seen[b"/edgestream"]
    assert seen[b"/edge"]["x-fine"] == "ok" and "x-data-bin" not in seen[b"/edge"]
    # A value gRPC metadata cannot carry (a tab): a clear 400 from a streaming API, never silence.
    got = _raw(server.cortex_port, _post(b"/edgestream", extra=b"X-Tab: a\tb\r\n"))
    assert got.startswith(b"HTTP/1.1 400") and b"x-tab" in got, got


# 3. Pipelined read-ahead
def test_pipelined_bodies_are_not_read_ahead(server):
    pid = _endpoint_pids(server.process.pid)
    sock = socket.create_connection(("127.0.0.1", server.cortex_port), timeout=60)
    slow = _post(b"/edge?do=sleep&s=3", close=False)
    body = b'"' + b"x" * ((1 << 20) - 10) + b'"'
    sock.sendall(slow)
    time.sleep(0.5)
    before = sum(_rss_kb(p) for p in pid)
    sent = [0]

    def send():
        try:
            for _ in range(24):
                sock.sendall(_post(b"/edge", body, close=False))
                sent[0] += 1
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(1.5)
    during = sum(_rss_kb(p) for p in pid)
    # Only what one read and the kernel's socket buffers hold: most of the 24 bodies (24 MiB) wait in the
    # client (before: all were read, ~31 x the body limit per connection).
    assert sent[0] < 20, sent[0]
    assert during - before < 8 * 1024, (before, during)
    got = b""
    while got.count(b"HTTP/1.1 200") < 25:
        piece = sock.recv(1 << 20)
        if not piece:
            break
        got += piece
    sock.close()
    assert got.count(b"HTTP/1.1 200") == 25


# 4. Slowloris
def test_a_header_block_sent_slowly_is_cut_off(server, repo):
    endpoint = _own_endpoint(server, repo, "--header-timeout", "3", "--body-timeout", "4")
    try:
        sock = socket.create_connection(("127.0.0.1", endpoint.port), timeout=30)
        sock.sendall(b"POST /edge HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        got = b""
        try:
            while time.monotonic() - start < 20:
                sock.sendall(b"X-A: b\r\n")  # a header line every second: never idle, never finished
                time.sleep(1)
        except OSError:
            pass
        sock.settimeout(5)
        try:
            got = sock.recv(1000)
        except OSError:
            pass
        took = time.monotonic() - start
        assert took < 12, took
        assert got == b"" or got.startswith(b"HTTP/1.1 408"), got
        sock = socket.create_connection(("127.0.0.1", endpoint.port), timeout=30)
        sock.sendall(b"POST /edge HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        start = time.monotonic()
        try:
            while time.monotonic() - start < 20:
                sock.sendall(b"x")  # a body byte every second
                time.sleep(1)
        except OSError:
            pass
        assert time.monotonic() - start < 12
    finally:
        endpoint.stop()


class _Endpoint:
    def __init__(self, process, port):
        self.process, self.port = process, port

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _own_endpoint(server, repo, *args, env=None):
    """A second Cortex endpoint on serve's Triton, with options of its own (short timeouts)."""
    (port,) = free_ports(1)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tritonize.cortex_endpoint",
            "--repository",
            str(repo),
            "--port",
            str(port),
            "--triton-http-port",
            str(server.http_port),
            "--triton-grpc-port",
            str(server.grpc_port),
            *args,
        ],
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return _Endpoint(process, port)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the endpoint did not listen")


# 2. Backpressure on streams
def test_a_stream_nobody_reads_is_not_buffered_by_the_endpoint(server):
    pids = _endpoint_pids(server.process.pid)
    before = sum(_rss_kb(p) for p in pids)
    sock = socket.create_connection(("127.0.0.1", server.cortex_port), timeout=60)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    sock.sendall(_post(b"/edgestream?do=big&n=400"))
    time.sleep(8)  # the predictor yields 400 MiB as fast as it can; the client reads nothing
    grown = sum(_rss_kb(p) for p in pids) - before
    got = 0
    while True:  # then the client reads: the whole stream comes
        piece = sock.recv(1 << 20)
        if not piece:
            break
        got += len(piece)
    sock.close()
    assert got > 400 << 20
    # Measured on a loaded 2-CPU machine: ~47 MB here (gRPC's own receive window), ~890 MB before.
    assert grown < 128 * 1024, f"the endpoint grew by {grown} KB"
    assert requests.post(f"{server.cortex}/edge", json={"after": 1}).json()["payload"] == {"after": 1}


# 10. serve --request-timeout through the endpoint
def test_serves_request_timeout_is_a_504_through_the_endpoint(server):
    r = requests.post(f"{server.cortex}/edgeslow?do=sleep&s=12", json={}, timeout=60)
    assert r.status_code == 504, (r.status_code, r.text)
    assert "request timeout" in r.text


# 11. Proxies in serve's environment
def test_streams_go_direct_with_a_proxy_in_the_environment(server):
    r = requests.post(f"{server.cortex}/edgestream?do=headers", json={}, headers={"X-One": "1"})
    assert r.status_code == 200, r.text
    assert json.loads(r.text)["x-one"] == "1"


def test_tritonizes_clients_go_direct_with_a_proxy_in_the_environment(server, monkeypatch):
    for name, value in server.proxy_env.items():
        if name.endswith("proxy"):
            monkeypatch.setenv(name, value)
    from tritonize.client.client import Client

    with Client(server.grpc_url, protocol="grpc") as client:
        assert client.predict("edge", {"g": 1})["payload"] == {"g": 1}
        assert [json.loads(c)["x-s"] for c in client.stream("edgestream", {}, headers={"x-s": "1"})] == ["1"]
    with Client(server.http_url) as client:
        assert client.predict("edge", {"h": 1})["payload"] == {"h": 1}
    env = {**os.environ, **server.proxy_env}
    env.pop("TRITONIZE_ADMIN_TOKEN")
    for protocol, url in (("grpc", server.grpc_url), ("http", server.http_url)):
        result = run_tritonize(
            "predict", "edgestream", "--stream", "--protocol", protocol, "--url", url, "-d", "{}", env=env, check=False
        )
        assert result.returncode == 0, result.stderr
    result = run_tritonize(
        "bench", "edge", "-d", "{}", "--engine", "builtin", "--protocol", "grpc", "--url", server.grpc_url,
        "--http-url", server.http_url, "--concurrency", "1", "--duration", "1s", "--json", env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (load,) = json.loads(result.stdout)["results"]
    assert load["requests"] > 0 and load["errors"] == 0, load


# 16. The admin token never reaches predictor code
def test_the_admin_token_is_in_no_endpoint_or_stub_environment(server):
    pids = _endpoint_pids(server.process.pid)
    assert len(pids) >= 1
    # This server's stubs (the processes running predictors): their shared-memory region names its port.
    mine = f"_{server.http_port}_".encode()
    stubs = [
        int(p) for p in os.listdir("/proc") if b"triton_python_backend_stub" in _cmdline(p) and mine in _cmdline(p)
    ]
    assert stubs, "no stub of this server found"
    for pid in pids + stubs:
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert TOKEN.encode() not in f.read(), pid
        assert TOKEN.encode() not in _cmdline(pid), pid


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


# 18. Clients: a server that is not there, TLS, a connect timeout
def test_predict_stream_over_grpc_to_no_server_is_one_clear_line():
    (port,) = free_ports(1)
    result = run_tritonize(
        "predict", "x", "--stream", "--protocol", "grpc", "--url", f"127.0.0.1:{port}", "-d", "{}", check=False
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach" in lines[0], result.stderr


def test_grpc_client_gives_up_connecting_after_its_connect_timeout():
    from tritonize.client.client import Client
    from tritonize.errors import ServerUnreachable

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP (the kernel does) but never speaks HTTP/2
    try:
        url = f"127.0.0.1:{silent.getsockname()[1]}"
        with Client(url, protocol="grpc", connect_timeout_s=1.0) as client:
            start = time.monotonic()
            with pytest.raises(ServerUnreachable):
                client.predict("x", {})
            with pytest.raises(ServerUnreachable):
                list(client.stream("x", {}))
            assert time.monotonic() - start < 15
    finally:
        silent.close()


def test_an_https_url_is_tls_or_refused_never_plain_http(server):
    from tritonize.client.client import Client
    from tritonize.errors import ServerUnreachable

    # Triton serves plain HTTP: a client told https must fail (TLS handshake), not talk plain HTTP.
    with Client(f"https://{server.http_url}") as client:
        assert client.tls
        with pytest.raises(ServerUnreachable):
            client.predict("edge", {})
        with pytest.raises(ServerUnreachable):
            list(client.stream("edgestream", {}))
    with Client(f"http://{server.http_url}") as client:
        assert client.predict("edge", {"plain": 1})["payload"] == {"plain": 1}
    with pytest.raises(ValueError, match="unsupported URL scheme"):
        Client(f"ftp://{server.http_url}")


# 9. Shutdown through the endpoint
def test_sigterm_drains_the_endpoint_and_every_process_of_it(repo):
    serve = ServeProcess(str(repo), extra_args=["--drain-notice", "3s"])
    assert serve.wait_ready(), serve.output()
    serve.wait_cortex()
    cortex = f"http://127.0.0.1:{serve.cortex_port}"
    pids = _endpoint_pids(serve.process.pid)
    assert len(pids) >= 2, pids  # the first process and its forked worker
    results = {}

    def slow_request():
        results["request"] = requests.post(f"{cortex}/edge?do=sleep&s=9", json={}, timeout=60)

    def slow_stream():
        results["stream"] = requests.post(f"{cortex}/edgestream?do=slow&n=9&s=1", json={}, timeout=60)

    threads = [threading.Thread(target=slow_request), threading.Thread(target=slow_stream)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    serve.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    # Drain notice: readiness says false, new requests are still answered.
    while requests.get(f"{cortex}/_tritonize/ready", timeout=10).status_code != 503:
        assert time.monotonic() - signalled < 2.5, "readiness still true during the drain notice"
        time.sleep(0.05)
    assert requests.post(f"{cortex}/edge", json={"during": 1}, timeout=10).status_code == 200
    time.sleep(max(0.0, signalled + 4.5 - time.monotonic()))
    # Then no process of the endpoint accepts (the worker too), while in-flight work goes on.
    refused = 0
    for _ in range(8):
        try:
            socket.create_connection(("127.0.0.1", serve.cortex_port), timeout=2).close()
        except OSError:
            refused += 1
    assert refused == 8, "a process of the endpoint still accepts connections"
    for thread in threads:
        thread.join(timeout=60)
    assert results["request"].status_code == 200 and results["request"].json() == {"slept": 9.0}
    assert results["stream"].status_code == 200
    assert results["stream"].text == "".join(f"chunk {i}\n" for i in range(9))
    assert serve.process.wait(timeout=60) == 0, serve.output()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _state(pid) == "Z", pid


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


# The adversarial pass: request smuggling and framing (docs/security.md lists what was tried).
@pytest.mark.parametrize(
    "request_bytes,status",
    [
        (b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400),
        (b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}abc", 400),
        (b"Transfer-Encoding: chunked, gzip\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nab\r\n0\r\n\r\n", 400),
        (b"X-A: one\r\n two\r\nContent-Length: 2\r\n\r\n{}", 400),  # obs-fold
        (b"Content-Length: -1\r\n\r\n{}", 400),
    ],
)
def test_ambiguous_framing_is_a_400_and_the_connection_closes(server, request_bytes, status):
    data = b"POST /edge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + request_bytes
    data += b"GET /edge HTTP/1.1\r\nHost: x\r\n\r\n"  # smuggled: must never be answered
    got = _raw(server.cortex_port, data)
    assert got.startswith(b"HTTP/1.1 %d" % status) and got.count(b"HTTP/1.1 ") == 1, got


def test_upgrade_connect_and_host_rules(server):
    got = _raw(
        server.cortex_port, b"GET /edge HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxx"
    )
    assert got.startswith(b"HTTP/1.1 200") and got.count(b"HTTP/1.1 ") == 1 and b"connection: close" in got, got
    got = _raw(server.cortex_port, b"CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 405") and got.count(b"HTTP/1.1 ") == 1, got
    got = _raw(server.cortex_port, b"POST /edge HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    assert got.startswith(b"HTTP/1.1 400") and b"Host" in got, got
    got = _raw(server.cortex_port, b"POST /edge HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 2\r\n\r\n{}")
    assert got.startswith(b"HTTP/1.1 400"), got
    # HTTP/1.0 without Host, and keep-alive asked for: answered, the connection kept for the second.
    two = b"POST /edge HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    one = two.replace(b"HTTP/1.0\r\n", b"HTTP/1.0\r\nConnection: keep-alive\r\n")
    assert _raw(server.cortex_port, one + two).count(b"HTTP/1.1 200") == 2


def test_bench_keeps_the_admin_token_out_of_perf_analyzers_command_line(server):
    from tritonize.client.bench import _perf_analyzer_usable

    if _perf_analyzer_usable() is None:
        pytest.skip("perf_analyzer does not run here")
    seen = []  # (seconds since perf_analyzer was first seen, token in its cmdline, token in its environ)
    done = threading.Event()

    def watch():
        first = {}
        while not done.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                cmdline = _cmdline(pid)
                if b"perf_analyzer" not in cmdline.split(b"\0", 1)[0]:
                    continue
                first.setdefault(pid, time.monotonic())
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        environ = f.read()
                except OSError:
                    continue
                seen.append((time.monotonic() - first[pid], TOKEN.encode() in cmdline, TOKEN.encode() in environ))
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    env = {**os.environ, "TRITONIZE_ADMIN_TOKEN": TOKEN}
    result = run_tritonize(
        "bench", "edge", "-d", "{}", "--engine", "perf_analyzer", "--concurrency", "1", "--duration", "1s",
        "--url", server.http_url, env=env, check=False,
    )  # fmt: skip
    done.set()
    watcher.join()
    assert result.returncode == 0, result.stderr  # the statistics (a restricted API) were read: the header was sent
    assert seen, "perf_analyzer was never seen running"
    assert not any(in_environ for _, _, in_environ in seen)
    late = [in_cmdline for since, in_cmdline, _ in seen if since > 0.5]
    assert late and not any(late), "the token stayed in perf_analyzer's command line"


def test_a_client_that_never_reads_its_answers_is_not_buffered_for(server):
    pids = _endpoint_pids(server.process.pid)
    before = sum(_rss_kb(p) for p in pids)
    sock = socket.create_connection(("127.0.0.1", server.cortex_port), timeout=60)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    one = b"GET /edge HTTP/1.1\r\nHost: x\r\n\r\n"  # answered at once (no Triton), ~300 bytes each
    sent = [0]

    def flood():
        try:
            for _ in range(100):
                sock.sendall(one * 4000)  # 400 000 requests in all, ~120 MB of answers
                sent[0] += 4000
        except OSError:
            pass

    threading.Thread(target=flood, daemon=True).start()
    time.sleep(6)
    grown = sum(_rss_kb(p) for p in pids) - before
    sock.close()
    assert sent[0] < 400_000, "the endpoint read everything a non-reading client sent"
    assert grown < 32 * 1024, f"the endpoint grew by {grown} KB"
    assert requests.get(f"{server.cortex}/edge").status_code == 200


def test_trailer_fields_never_become_headers_and_paths_are_percent_decoded(server):
    body = b"2\r\n{}\r\n0\r\nX-Smuggled: 1\r\nContent-Type: text/plain\r\n\r\n"
    got = _raw(
        server.cortex_port,
        b"POST /%65dge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + body,
    )
    assert got.startswith(b"HTTP/1.1 200"), got
    document = json.loads(got.split(b"\r\n\r\n", 1)[1])
    assert document["payload"] == {} and "x-smuggled" not in document["headers"]
    assert document["headers"]["content-type"] == "application/json"


def test_an_http10_client_gets_a_stream_without_chunked_framing(server):
    got = _raw(
        server.cortex_port,
        b"POST /edgestream?do=slow&n=3&s=0 HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    )
    head, body = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in head.lower(), got
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"
