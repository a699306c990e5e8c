"""Reload an API whose instance process (python-backend stub) died; say when an API is stuck.

The rules (which stub died, which API is stuck) are health/'s, shared with the image's supervisor
and the Kubernetes liveness check; this module acts on them. It watches from tritonserver's start,
so an instance that dies while its model loads, or right after (its __init__ returned, then its
process exited), is a crash like any other: once the model is loaded (READY in the repository
index) it is reloaded through the repository API and the dead stub's shared memory is removed. If
the reload fails, the model is unloaded, so that its readiness says what is true. A death of a model
that never loads (its load failed) needs no healing: Triton reports the failure.

A reload gets the startup's patience (serve --ready-timeout): a predictor whose __init__ takes
minutes is not given up on after the admin client's usual timeout.
"""

import logging
import os
import threading
import time

from tritonize.adapter.runtime.constants import REQUEST_TIMEOUT_EXIT_CODE
from tritonize.errors import AdminError
from tritonize.health.stubs import SHM_DIR, DeathTracker, Stub, exit_status, expected_instances, live_stubs
from tritonize.health.stuck import StuckDetector, queue_samples, stuck_after_s
from tritonize.host import local_http

log = logging.getLogger("tritonize.watchdog")
LOADING_STATES = ("LOADING", "UNLOADING", "")


class StubWatchdog:
    """Polls every `interval_s`; calls report(message) for what it sees and does."""

    def __init__(
        self,
        server_pid,
        admin,
        shm_prefix,
        report=None,
        interval_s=0.25,
        reload_timeout_s=300.0,
        metrics_url=None,
        proc="/proc",
        shm_dir=SHM_DIR,
    ):
        self.server_pid = server_pid
        self.proc = proc  # where /proc is (tests fabricate one)
        self.shm_dir = shm_dir
        self.metrics_url = metrics_url  # for telling a stuck API (health/stuck.py); None: not checked
        self.stuck = {}  # API -> seconds its waiting requests have not moved
        self._stuck_detector = StuckDetector(stuck_after_s())
        self._next_metrics = 0.0
        self.reload_timeout_s = reload_timeout_s
        self.admin = admin
        self.shm_prefix = shm_prefix
        self.report = report or log.warning
        self.interval_s = interval_s
        self.recoveries = []  # (model, seconds from detection to ready, ok)
        self.pending = {}  # model -> [Stub] that died while it was not (yet) loaded
        self._stop = threading.Event()
        self._thread = None
        self.tracker = DeathTracker(server_pid, proc)

    def start(self):
        self.tracker.refresh()
        self._thread = threading.Thread(target=self._run, name="tritonize-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _run(self):
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
                self.check_stuck()
            except Exception as exc:  # never let the watchdog die silently
                self.report(f"watchdog: {type(exc).__name__}: {exc}")

    def check(self):
        for stub in self.tracker.poll():
            self.pending.setdefault(stub.model, []).append(stub)
        if not self.pending and not self.tracker.unexplained:
            return
        try:
            states = {m["name"]: m.get("state", "") for m in self.admin.index(timeout=5.0)}
        except (AdminError, OSError):
            return  # Triton busy or going away: judge at the next poll
        if self.tracker.unexplained:
            self._explain(states)
        for model in sorted(self.pending):
            if self._stop.is_set():
                return
            state = states.get(model, "")
            if state in LOADING_STATES:
                continue  # heal it once it is loaded (a death right after __init__ returned)
            dead = self.pending.pop(model)
            if state == "READY":
                self._recover(model, dead)
            else:
                self._remove_regions(dead)  # its load failed: Triton said why; nothing to heal

    def _explain(self, states):
        """Zombie stubs nobody saw alive: the loaded models with fewer live instance processes than their
        config asks for lost them. Kept for the next poll while a model still loads."""
        live = {}
        for stub in live_stubs(self.server_pid, self.proc).values():  # a full read: every thread's children
            live[stub.model] = live.get(stub.model, 0) + 1
        short = []
        for model, state in sorted(states.items()):
            if state != "READY" or model in self.pending:
                continue
            try:
                expected = expected_instances(self.admin.model_config(model))
            except (AdminError, OSError, ValueError, TypeError):
                continue
            if live.get(model, 0) < expected:
                short.append(model)
        pids = sorted(self.tracker.unexplained)
        for model in short:
            self.pending[model] = [Stub(pids[0], model, "", "of " + model)]
        if short or not any(state in LOADING_STATES for state in states.values()):
            self.tracker.unexplained = set()

    def check_stuck(self, now=None):
        """Once a second: say when an API's requests wait and none finishes (a hung predict)."""
        now = time.monotonic() if now is None else now
        if self.metrics_url is None or now < self._next_metrics:
            return
        self._next_metrics = now + 1.0
        try:
            with local_http.urlopen(self.metrics_url + "/metrics", timeout=5) as response:
                samples = queue_samples(response.read().decode("utf-8", "replace"))
        except OSError:
            return
        stuck = self._stuck_detector.update(samples, now)
        for model in sorted(stuck.keys() - self.stuck.keys()):
            self.report(
                f"API {model!r} looks stuck: {samples[model][0]} request(s) waiting, none finished for "
                f"{stuck[model]:.0f} s (an endless loop or a hang in predict?); they wait until it returns"
            )
        for model in sorted(self.stuck.keys() - stuck.keys()):
            self.report(f"API {model!r} is answering again")
        self.stuck = stuck

    def _recover(self, model, dead):
        names = ", ".join(f"{stub.instance} (pid {stub.pid})" for stub in dead)
        why = (
            " (it ended itself: a request ran over the API's request timeout)"
            if any(exit_status(stub.pid, self.proc) == REQUEST_TIMEOUT_EXIT_CODE for stub in dead)
            else ""
        )
        self.report(
            f"API {model!r}: instance process {names} died{why}; requests to it fail until it is reloaded; reloading"
        )
        # The model's other instances are replaced by the reload: their exit is expected.
        self.tracker.retire(model)
        start = time.monotonic()
        try:
            self.admin.reload(model, nonce=f"{os.getpid()}-{time.time_ns()}", timeout=self.reload_timeout_s)
            ok = True
        except (AdminError, OSError) as exc:
            ok = False
            self.report(f"API {model!r}: reload failed ({exc}); unloading it so that it reports not ready")
            try:
                self.admin.unload(model)
            except (AdminError, OSError) as unload_exc:
                self.report(f"API {model!r}: unload failed too ({unload_exc})")
        took = time.monotonic() - start
        self.recoveries.append((model, took, ok))
        self._remove_regions(dead)
        self.tracker.refresh()
        if ok:
            self.report(f"API {model!r}: reloaded in {took:.1f} s; serving again")

    def _remove_regions(self, dead):
        for stub in dead:
            if self.shm_prefix and stub.shm_region.startswith(self.shm_prefix) and "/" not in stub.shm_region:
                try:
                    os.unlink(os.path.join(self.shm_dir, stub.shm_region))
                except OSError:
                    pass
