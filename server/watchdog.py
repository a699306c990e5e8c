"""Reload an API whose instance process (python-backend stub) died.

Triton 2.51 keeps such a model READY while every request fails with "Stub process
... is not healthy", and never restarts the stub. The watchdog polls tritonserver's
children (each stub is one: `triton_python_backend_stub <model.py> <shm region> ...
<instance name>`); when a stub dies (it stays a zombie, tritonserver does not reap
it) the model is reloaded through the repository API, and the dead stub's shared
memory region is removed. If the reload fails, the model is unloaded, so that its
readiness says what is true.

Only a zombie is a crash: stubs that Triton stopped itself (an unload or load through
the admin API, the watchdog's own reloads) are reaped by tritonserver and just vanish.
A reload gets the startup's patience (serve --ready-timeout): a predictor whose
__init__ takes minutes is not given up on after the admin client's usual timeout.
"""

import logging
import os
import threading
import time

from tritonize.adapter.runtime.constants import REQUEST_TIMEOUT_EXIT_CODE
from tritonize.errors import AdminError
from tritonize.host import local_http
from tritonize.server.stuck import StuckDetector, queue_samples, stuck_after_s

STUB_NAME = "triton_python_backend_stub"
# /proc/<pid>/stat's comm: the executable's name cut to 15 characters; a zombie has no cmdline.
STUB_COMM = STUB_NAME[:15]
log = logging.getLogger("tritonize.watchdog")


class Stub:
    def __init__(self, pid, model, shm_region, instance):
        self.pid, self.model, self.shm_region, self.instance = pid, model, shm_region, instance


def _child_pids(parent_pid, proc="/proc", threads=None):
    """(pids of parent_pid's children, zombies included until reaped; the threads that have some),
    from the threads' `children` files (all threads, or those given); None where the kernel has
    none (CONFIG_PROC_CHILDREN off): then /proc is scanned."""
    pids, parents = set(), set()
    if threads is None:
        try:
            threads = [int(tid) for tid in os.listdir(f"{proc}/{parent_pid}/task")]
        except (OSError, ValueError):
            return None
    found_file = False
    for tid in threads:
        try:
            with open(f"{proc}/{parent_pid}/task/{tid}/children", "rb") as f:
                text = f.read()
        except OSError:  # a thread that just ended, or no such file at all
            continue
        found_file = True
        if text.strip():
            pids.update(int(pid) for pid in text.split())
            parents.add(tid)
    return (pids, parents) if found_file else None


def _child(pid, parent_pid, proc="/proc"):
    """(state, comm, argv) of process pid if it is parent_pid's child, else None (or if it is gone)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", errors="replace")
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) != parent_pid:  # another's (or a pid reused since it was listed)
            return None
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            argv = [a.decode("utf-8", errors="replace") for a in f.read().split(b"\0")]
    except (OSError, IndexError, ValueError):
        return None
    return fields[0], comm, argv


def _children(parent_pid, proc="/proc", threads=None, also=()):
    """{pid: (state, comm, argv)} of the processes whose parent is parent_pid, and the threads
    whose `children` files list some (None: none read).

    Reads the `children` files of the given threads (all if None) and checks the pids in `also`
    (the stubs already known) directly; only where the kernel has no such files, the whole of /proc.
    """
    listed = _child_pids(parent_pid, proc, threads)
    if listed is None:
        candidates, parents = {int(entry) for entry in os.listdir(proc) if entry.isdigit()}, None
    else:
        candidates, parents = listed[0] | set(also), listed[1]
    found = {}
    for pid in candidates:
        child = _child(pid, parent_pid, proc)
        if child is not None:
            found[pid] = child
    return found, parents


def stub_processes(server_pid, proc="/proc", lister=None):
    """({pid: Stub} of the running stubs of one tritonserver, {pids of its zombie stubs})."""
    stubs, zombies = {}, set()
    children = lister.children() if lister is not None else _children(server_pid, proc)[0]
    for pid, (state, comm, argv) in children.items():
        if state in ("Z", "X"):
            if comm == STUB_COMM:
                zombies.add(pid)
            continue
        if len(argv) < 9 or not argv[0].endswith(STUB_NAME):
            continue
        model = os.path.basename(os.path.dirname(os.path.dirname(argv[1])))  # <repo>/<model>/<version>/model.py
        stubs[pid] = Stub(pid, model, argv[2], argv[8])
    return stubs, zombies


def exit_status(pid, proc="/proc"):
    """A zombie's exit status (exit code field of /proc/<pid>/stat, as waitpid reports it), or None."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        if fields[0] not in (b"Z", b"X"):  # still running: no exit status yet
            return None
        status = int(fields[49])  # field 52 of stat; fields[0] is field 3
    except (OSError, IndexError, ValueError):
        return None
    return status >> 8 if status & 0x7F == 0 else None  # exited (not killed by a signal)


def live_stubs(server_pid, proc="/proc"):
    """{pid: Stub} for the running (not exited) stubs of one tritonserver."""
    return stub_processes(server_pid, proc)[0]


class ChildLister:
    """tritonserver's children, cheaply: Triton has ~100 threads, and reading each one's `children`
    file costs about what the scan of /proc did. Each poll reads the files of the threads that had
    children at the last full read, plus the known stubs' own /proc entries (so a known stub's death
    is seen at the very next poll, as before); every FULL_READ_EVERY polls, all threads' files (a stub
    started by another thread is found within that many polls)."""

    FULL_READ_EVERY = 8

    def __init__(self, server_pid, proc="/proc"):
        self.server_pid, self.proc = server_pid, proc
        self.known = ()  # pids to check directly (the watchdog's known stubs)
        self._threads = None  # threads to read; None: all
        self._polls = 0

    def children(self):
        full = self._threads is None or self._polls % self.FULL_READ_EVERY == 0
        self._polls += 1
        found, parents = _children(self.server_pid, self.proc, None if full else self._threads, self.known)
        if full:
            self._threads = None if parents is None else parents | {self.server_pid}
        return found


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
    ):
        self.server_pid = server_pid
        self.proc = proc  # where /proc is (tests fabricate one)
        self.metrics_url = metrics_url  # for telling a stuck API (server/stuck.py); None: not checked
        self.stuck = {}  # API -> seconds its waiting requests have not moved
        self._stuck_detector = StuckDetector(stuck_after_s())
        self._next_metrics = 0.0
        self.reload_timeout_s = reload_timeout_s
        self.admin = admin
        self.shm_prefix = shm_prefix
        self.report = report or log.warning
        self.interval_s = interval_s
        self.recoveries = []  # (model, seconds from detection to ready, ok)
        self._stop = threading.Event()
        self._thread = None
        self._known = {}
        self._retired = set()  # stubs of a reloaded model: Triton stops them itself
        self._lister = ChildLister(server_pid, proc)

    def start(self):
        self._known = live_stubs(self.server_pid, self.proc)
        self._thread = threading.Thread(target=self._run, name="tritonize-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self):
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
                self.check_stuck()
            except Exception as exc:  # never let the watchdog die silently
                self.report(f"watchdog: {type(exc).__name__}: {exc}")

    def check(self):
        self._lister.known = self._known
        live, zombies = stub_processes(self.server_pid, self.proc, self._lister)
        # Running at the last poll and a zombie now: it died. Gone altogether: Triton stopped it.
        dead = [stub for pid, stub in self._known.items() if pid in zombies and pid not in self._retired]
        self._retired &= set(live) | zombies
        self._known = live
        for model in sorted({stub.model for stub in dead}):
            if self._stop.is_set():
                return
            self._recover(model, [stub for stub in dead if stub.model == model])

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
        for stub in dead:
            if stub.shm_region.startswith(self.shm_prefix) and "/" not in stub.shm_region:
                try:
                    os.unlink(os.path.join("/dev/shm", stub.shm_region))
                except OSError:
                    pass
        # The model's other instances were replaced by the reload: their exit is expected.
        self._retired |= {pid for pid, stub in self._known.items() if stub.model == model}
        fresh = live_stubs(self.server_pid, self.proc)
        self._known.update({pid: stub for pid, stub in fresh.items() if pid not in self._known})
        if ok:
            self.report(f"API {model!r}: reloaded in {took:.1f} s; serving again")
