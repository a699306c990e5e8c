"""One supervisor for every process `serve` runs (tritonserver, the Cortex endpoint), on the host
and inside an image (server/container.py runs the same loop around the image's tritonserver).

Each process is a Supervised: how to tell it died, how to say why, how to restart it, and what a
process that keeps dying means. Restarts are bounded (RestartPolicy: at most MAX_RESTARTS within
RESTART_WINDOW_S, with backoff) and scheduled, never slept inside the loop: while the Cortex
endpoint waits for its restart, Triton's death is still seen at once.

What a process that keeps dying does to the others:
- tritonserver (essential): the supervisor gives up and raises ServeError; serve exits non-zero
  (in a pod the container exits and the kubelet restarts it, with its own back-off).
- the Cortex endpoint (not essential): Triton keeps serving on its own ports; the endpoint is retried
  every GIVEN_UP_RETRY_S for as long as serve runs, each failure said on the log, and `degraded`
  names it (the image's readiness check reports it). A broken endpoint never takes Triton down.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from tritonize.errors import ServeError

MAX_RESTARTS = 5
RESTART_WINDOW_S = 600.0
RESTART_BACKOFF_S = (1, 2, 4, 8, 16)
# A non-essential process the policy gave up on is tried again this often.
GIVEN_UP_RETRY_S = 60.0
CHECK_S = 0.5


class RestartPolicy:
    """Bounded restarts with backoff: next_delay() is None once too many fell in the window."""

    def __init__(self, max_restarts=MAX_RESTARTS, window_s=RESTART_WINDOW_S, backoff_s=RESTART_BACKOFF_S):
        self.max_restarts, self.window_s, self.backoff_s = max_restarts, window_s, backoff_s
        self.restarts: list[float] = []  # monotonic times

    def next_delay(self, now=None):
        now = time.monotonic() if now is None else now
        self.restarts = [t for t in self.restarts if now - t < self.window_s]
        if len(self.restarts) >= self.max_restarts:
            return None
        delay = self.backoff_s[min(len(self.restarts), len(self.backoff_s) - 1)]
        self.restarts.append(now)
        return delay

    def describe(self):
        return f"restart {len(self.restarts)} of at most {self.max_restarts} within {self.window_s / 60:.0f} min"


@dataclass
class Supervised:
    """One process under supervision.

    died() -> its exit code once it exited on its own, else None; report(code) -> why, for the log;
    restart() -> a line saying it is back (raises ServeError if it failed: counted as another death).
    """

    name: str
    died: Callable[[], "int | None"]
    report: Callable[[int], str]
    restart: Callable[[], str]
    essential: bool = True
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    on_down: Callable[[], None] = lambda: None  # it died: e.g. readiness false until it is back
    restart_at: "float | None" = None  # a restart is scheduled (monotonic time)
    given_up: bool = False


class Supervisor:
    """run(): watch every process until the policy of an essential one gives up (ServeError).
    Ctrl-C/SIGTERM end it through the caller's signal handlers (an exception out of run())."""

    def __init__(self, out, check_s=CHECK_S, clock=time.monotonic, sleep=time.sleep):
        self.out, self.check_s, self.clock, self.sleep = out, check_s, clock, sleep
        self.processes: list[Supervised] = []

    def add(self, process: Supervised) -> Supervised:
        self.processes.append(process)
        return process

    @property
    def degraded(self):
        """{name: what is wrong} of the processes down now (a restart pending, or given up on)."""
        return {
            p.name: f"given up on; retried every {GIVEN_UP_RETRY_S:.0f} s" if p.given_up else "restarting"
            for p in self.processes
            if p.restart_at is not None
        }

    def run(self) -> NoReturn:
        while True:
            self.check()
            self.sleep(self.check_s)

    def check(self):
        now = self.clock()
        for process in self.processes:
            if process.restart_at is None:
                code = process.died()
                if code is not None:
                    self._schedule(process, code, now)
            if process.restart_at is not None and now >= process.restart_at:
                self._restart(process)

    def _schedule(self, process, code, now):
        process.on_down()
        why = process.report(code)
        delay = process.policy.next_delay(now)
        if delay is None:
            times = f"{process.policy.max_restarts + 1} times within {process.policy.window_s / 60:.0f} min"
            if process.essential:
                raise ServeError(f"{why}\nNot restarting it: {process.name} died {times}.")
            process.given_up = True
            delay = GIVEN_UP_RETRY_S
            self.out(
                f"error: {why}; {process.name} died {times}: [supervisor] the rest keeps serving; "
                f"trying {process.name} again every {delay:.0f} s"
            )
        else:
            self.out(f"error: {why}")
            self.out(f"[supervisor] restarting {process.name} in {delay} s ({process.policy.describe()})")
        process.restart_at = now + delay

    def _restart(self, process):
        process.restart_at = None
        try:
            line = process.restart()
        except ServeError as exc:
            self.out(f"error: {exc}")
            if process.died() is None:
                raise  # running but not ready in time: not a crash to retry
            self._schedule(process, process.died(), self.clock())
            return
        process.given_up = False
        self.out(f"[supervisor] {line}")


def supervisor_for(server, front, out, ready_timeout_s, on_ready=lambda ready: None) -> Supervisor:
    """The one Supervisor of a serve run: Triton (essential) and the Cortex endpoint (not: see
    server/supervisor.py for what a process that keeps dying does)."""
    supervisor = Supervisor(out)

    def triton_report(code):
        server.settle_output()
        return server.failure_report()

    def restart_triton():
        server.stop()  # what the dead one left: stubs, shared memory, work folder
        server.start()
        took = server.wait_ready(timeout=ready_timeout_s)
        on_ready(True)
        return f"Triton is ready again ({took:.1f} s)"

    supervisor.add(
        Supervised(
            "Triton",
            died=lambda: server.process.poll(),
            report=triton_report,
            restart=restart_triton,
            on_down=lambda: on_ready(False),
        )
    )
    if front is not None:

        def restart_front():
            front.stop()  # workers the dead process left
            front.start()
            return f"the Cortex endpoint is back on {front.url}"

        supervisor.add(
            Supervised(
                "the Cortex endpoint",
                died=front.died,
                report=lambda code: f"the Cortex endpoint exited (code {code}; port {front.options.cortex_port})",
                restart=restart_front,
                essential=False,
            )
        )
    return supervisor


def stop_all(server, front, options):
    """SIGTERM's order, bounded: readiness false for --drain-notice (both Triton and the Cortex endpoint, which
    gets its SIGTERM first and drains for the same notice, keep answering), then the Cortex endpoint finishes
    its in-flight requests while Triton drains, then Triton stops. The whole stop takes at most drain notice +
    exit timeout + a few s."""
    if front is not None:
        front.announce_draining()  # with BatchAPIs its readiness does not follow Triton's (cortex_endpoint/app.py)
    server.announce_draining()
    deadline = time.monotonic() + options.exit_timeout_s
    if front is not None:
        front.stop(timeout_s=max(1.0, deadline - time.monotonic()))
    if getattr(server, "drains", False):
        server.stop(deadline=max(deadline, time.monotonic() + 2.0))
    else:
        server.stop()  # docker stop: the container's own drain, within --exit-timeout
