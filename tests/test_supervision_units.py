"""Units of serve's supervision (issue 17): restart policy, exit descriptions, bounded output,
the watchdog's crash rule and reload patience, stuck detection, proxy bypass, stale leftovers."""

import json
import os
import subprocess
import sys
import threading

import pytest

from tritonize.health import stubs as stubs_module
from tritonize.health.stuck import StuckDetector, queue_samples
from tritonize.host.local_http import is_this_machine
from tritonize.server import watchdog as watchdog_module
from tritonize.server.launcher import LOG_LINES_KEPT, Launcher, describe_exit
from tritonize.server.stale_runs import remove_stale_leftovers
from tritonize.server.supervisor import RestartPolicy


def test_restart_policy_backs_off_and_gives_up_within_its_window():
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_s=(1, 2, 4))
    assert [policy.next_delay(now=t) for t in (0, 1, 2)] == [1, 2, 4]
    assert policy.next_delay(now=3) is None  # a fourth death within a minute
    assert policy.next_delay(now=100) == 1  # the window moved on


@pytest.mark.parametrize(
    "code, text",
    [(0, "exit code 0"), (1, "exit code 1"), (-11, "killed by signal 11 (SIGSEGV)"),
     (139, "killed by signal 11 (SIGSEGV), exit code 139"), (-9, "killed by signal 9 (SIGKILL)")],
)  # fmt: skip
def test_exit_descriptions_name_the_signal(code, text):
    assert describe_exit(code) == text


class _Lines(Launcher):
    http_url = "http://127.0.0.1:9"
    start = wait_ready = stop = kill = failure_report = lambda self, *a, **k: None


def test_output_is_bounded_and_reading_survives_a_closed_reader():
    launcher = _Lines()
    launcher.process = subprocess.Popen(
        [sys.executable, "-c", f"for i in range({LOG_LINES_KEPT * 3}): print('line', i)"], stdout=subprocess.PIPE
    )
    seen = []

    def closed(line):
        seen.append(line)
        raise BrokenPipeError()  # `serve | head` went away

    launcher.on_output = closed
    launcher._read_output()
    assert len(seen) == 1 and launcher.on_output is None
    assert len(launcher.log_lines) == LOG_LINES_KEPT and launcher.lines_total == LOG_LINES_KEPT * 3
    assert launcher.log_lines[-1] == f"line {LOG_LINES_KEPT * 3 - 1}"
    launcher._ready_mark = launcher.lines_total - 2
    assert launcher.report_lines() == [f"line {LOG_LINES_KEPT * 3 - 2}", f"line {LOG_LINES_KEPT * 3 - 1}"]
    launcher._ready_mark = launcher.lines_total
    assert "nothing printed since it was ready" in launcher.report_lines()[0]


class _Admin:
    def __init__(self):
        self.reloads = []

    def reload(self, name, nonce, timeout=None):
        self.reloads.append((name, timeout))

    def index(self, timeout=None):
        return [{"name": "api", "state": "READY"}]


def test_only_a_zombie_stub_is_a_crash_and_reloads_get_the_startup_patience(monkeypatch):
    stub = stubs_module.Stub(101, "api", "tritonize1_2_api", "api_0_0")
    processes = {"now": ({101: stub}, set())}
    monkeypatch.setattr(stubs_module, "stub_processes", lambda pid, proc="/proc", lister=None: processes["now"])
    admin, events = _Admin(), []
    dog = watchdog_module.StubWatchdog(1, admin, "tritonize1_2_", report=events.append, reload_timeout_s=900)
    dog.tracker.known = {101: stub}
    processes["now"] = ({}, set())  # gone: reaped by Triton (an unload through the admin API)
    dog.check()
    assert admin.reloads == [] and events == []
    dog.tracker.known = {101: stub}
    processes["now"] = ({}, {101})  # a zombie: it died
    dog.check()
    assert admin.reloads == [("api", 900)] and "died" in events[0]
    dog.check()  # still a zombie: handled once
    assert len(admin.reloads) == 1


def test_stuck_means_waiting_requests_and_no_execution_for_a_while():
    detector = StuckDetector(after_s=10)
    text = (
        'nv_inference_pending_request_count{model="a",version="1"} 2\n'
        'nv_inference_exec_count{model="a",version="1"} 5\n'
    )
    samples = queue_samples(text)
    assert samples == {"a": (2, 5)}
    assert detector.update(samples, now=0) == {}
    assert detector.update(samples, now=9) == {}
    assert detector.update(samples, now=10) == {"a": 10}
    assert detector.update({"a": (2, 6)}, now=11) == {}  # one finished: busy, not stuck
    assert detector.update({"a": (0, 6)}, now=30) == {}  # nothing waits


def test_loopback_and_own_addresses_bypass_proxies():
    assert is_this_machine("127.0.0.1") and is_this_machine("localhost") and is_this_machine("0.0.0.0")
    assert is_this_machine("::1") and is_this_machine("127.5.6.7")
    assert not is_this_machine("192.0.2.1")  # TEST-NET: never this machine
    assert not is_this_machine("triton.example.com")  # names: the proxy settings decide


def test_stale_leftovers_of_dead_runs_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"tritonize-serve-{dead.pid}-abc").mkdir()
    (tmp_path / f"tritonize-serve-{os.getpid()}-def").mkdir()  # a live run: kept
    (tmp_path / "tritonize-serve-old").mkdir()  # no pid in the name: kept
    removed = remove_stale_leftovers(str(tmp_path))
    assert removed == [str(tmp_path / f"tritonize-serve-{dead.pid}-abc")]
    assert sorted(os.listdir(tmp_path)) == [f"tritonize-serve-{os.getpid()}-def", "tritonize-serve-old"]


def test_watchdog_thread_never_dies_on_errors():
    events = []
    dog = watchdog_module.StubWatchdog(os.getpid(), _Admin(), "x", report=events.append, interval_s=0.01)
    dog.check = lambda: (_ for _ in ()).throw(RuntimeError("boom"))
    dog.start()
    threading.Event().wait(0.1)
    dog.stop()
    assert events and "RuntimeError: boom" in events[0]


class _FakeFront:
    class options:  # noqa: N801 (stands in for ServeOptions)
        cortex_port = 8080

    url = "http://127.0.0.1:8080"

    def __init__(self, exits):
        self.exits = list(exits)  # what died() answers, one per check
        self.starts = self.stops = 0

    def died(self):
        return self.exits.pop(0) if self.exits else None

    def start(self):
        self.starts += 1

    def stop(self):
        self.stops += 1


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_one_supervisor_restarts_a_dead_cortex_endpoint_and_never_lets_it_take_triton_down():
    from tritonize.server.supervisor import GIVEN_UP_RETRY_S, Supervised, Supervisor

    lines, clock = [], _Clock()
    front = _FakeFront([None, -9, None, 1, 1])
    triton_exits = []
    supervisor = Supervisor(lines.append, clock=clock)
    triton = supervisor.add(
        Supervised("Triton", died=lambda: triton_exits.pop(0) if triton_exits else None, report=str, restart=str)
    )
    endpoint = supervisor.add(
        Supervised(
            "the Cortex endpoint",
            died=front.died,
            report=lambda code: f"the Cortex endpoint exited (code {code})",
            restart=lambda: (front.stop(), front.start()) and f"the Cortex endpoint is back on {front.url}",
            essential=False,
            policy=RestartPolicy(max_restarts=1, window_s=60, backoff_s=(2,)),
        )
    )
    supervisor.check()  # running: nothing to do
    assert (front.starts, lines) == (0, [])
    supervisor.check()  # killed: a restart scheduled in 2 s, not slept inside the loop
    assert front.starts == 0 and "exited (code -9)" in lines[0] and supervisor.degraded == {endpoint.name: "restarting"}
    clock.now += 2
    supervisor.check()
    assert (front.stops, front.starts) == (1, 1) and "back on http://127.0.0.1:8080" in lines[-1]
    supervisor.check()  # None
    supervisor.check()  # dies again: the policy gives up, Triton keeps serving
    assert "the rest keeps serving" in lines[-1] and front.starts == 1
    assert "given up on" in supervisor.degraded[endpoint.name] and triton.restart_at is None
    clock.now += GIVEN_UP_RETRY_S - 1
    supervisor.check()
    assert front.starts == 1
    clock.now += 1
    supervisor.check()  # retried every GIVEN_UP_RETRY_S for as long as serve runs
    assert front.starts == 2 and supervisor.degraded == {}


def test_the_supervisor_gives_up_on_triton_with_the_reason():
    from tritonize.errors import ServeError
    from tritonize.server.supervisor import Supervised, Supervisor

    clock, lines = _Clock(), []
    supervisor = Supervisor(lines.append, clock=clock)
    supervisor.add(
        Supervised(
            "Triton",
            died=lambda: -11,
            report=lambda code: f"Triton stopped (code {code})",
            restart=lambda: "back",
            policy=RestartPolicy(max_restarts=1, window_s=60, backoff_s=(0,)),
        )
    )
    supervisor.check()  # died, restart scheduled now
    assert lines[-1] == "[supervisor] back"
    with pytest.raises(ServeError, match="Triton stopped .code -11.\nNot restarting it: Triton died 2 times"):
        supervisor.check()


def test_the_images_probes_say_why():
    """server/container.py's /ready and /live: which API failed, draining, a stuck API, a degraded endpoint."""
    from tritonize.server.container import Health
    from tritonize.server.supervisor import Supervisor

    class Admin:
        def index(self, timeout=None):
            return [{"name": "ok", "state": "READY"}, {"name": "bad", "state": "UNAVAILABLE", "reason": "load failed"}]

        def live(self, timeout=None):
            return True

    class Server:
        admin, failed_apis = Admin(), {"bad": "RuntimeError: no weights"}

        class watchdog:  # noqa: N801
            stuck: dict = {}

    supervisor = Supervisor(lambda line: None)
    health = Health(Server(), None, supervisor)
    ok, body = health.readiness()
    assert not ok and "Triton is not ready (starting or restarting)" in body["problems"]
    health.ready = True
    ok, body = health.readiness()
    assert ok and body["apis"] == {"ok": "ready", "bad": "unavailable (see the log)"}
    assert "no weights" not in json.dumps(body)  # a predictor's traceback (paths) never leaves through a probe
    assert health.liveness() == (True, {"live": True, "problems": []})
    Server.watchdog.stuck = {"ok": 301.0}
    ok, body = health.liveness()
    assert not ok and "API 'ok' is stuck" in body["problems"][0]
    health.draining = True
    assert health.readiness()[1]["problems"] == ["draining (SIGTERM)"]


def test_batch_apis_are_not_loaded_at_start_nor_waited_for(tmp_path):
    """A BatchAPI's model is loaded by its jobs: Triton starts with the realtime models only, and the image's
    /ready neither waits for a BatchAPI nor counts it as failed (idle, or running a job)."""
    from tritonize.adapter.build import build
    from tritonize.server.container import Health
    from tritonize.server.options import ServerOptions, model_control_args
    from tritonize.server.supervisor import Supervisor

    (tmp_path / "rt.py").write_text("class PythonPredictor:\n    def predict(self, payload):\n        return 1\n")
    (tmp_path / "job.py").write_text("class PythonPredictor:\n    def predict(self, payload, batch_id): pass\n")
    (tmp_path / "cortex.yaml").write_text(
        "- name: realtime\n  predictor: {path: rt.py}\n- name: offline\n  kind: BatchAPI\n  predictor: {path: job.py}\n"
    )
    repo = build(str(tmp_path / "cortex.yaml"), str(tmp_path / "repo")).output_dir
    options = ServerOptions(repo)
    assert model_control_args(options) == [
        "--model-control-mode=explicit",
        "--load-model=realtime",
        "--exit-on-error=false",
    ]
    index = [{"name": "offline"}, {"name": "realtime", "state": "READY"}]

    class Admin:
        def index(self, timeout=None):
            return index

    class Server:
        admin = Admin()

    Server.options = options
    health = Health(Server(), None, Supervisor(lambda line: None))
    health.ready = True
    assert health.readiness() == (
        True,
        {"ready": True, "problems": [], "apis": {"offline": "idle (BatchAPI)", "realtime": "ready"}},
    )
    index[0]["state"] = "READY"
    assert health.readiness()[1]["apis"]["offline"] == "running a job"
    index[1]["state"] = "UNAVAILABLE"
    assert health.readiness()[1]["problems"] == ["no API is loaded"]
    # Without a BatchAPI nothing changes: every model at start.
    rt_only = build(str(tmp_path / "rt.py"), str(tmp_path / "rt-repo")).output_dir
    assert "--load-model=*" in model_control_args(ServerOptions(rt_only))
