"""CPU the watchdog's poll costs: tritonserver's children from its `children` files versus the
scan of all of /proc (the fallback, and what every poll did before).

    python benchmarks/watchdog_cost.py [calls] [tritonserver pid]
Without a pid, this process with 4 children stands in for tritonserver and its stubs (a real
tritonserver has ~100 threads, each with a children file: pass its pid). Rounds are interleaved.
Prints CPU ms per poll and per second at the watchdog's 4 polls a second.
"""

import os
import subprocess
import sys
import time

from tritonize.server import watchdog

POLLS_PER_S = 4  # StubWatchdog's interval_s = 0.25


def cpu_per_call(calls, scan, pid):
    """CPU seconds per poll: the /proc scan, or the watchdog's ChildLister as StubWatchdog.check uses it."""
    original = watchdog._child_pids
    lister = None
    if scan:
        watchdog._child_pids = lambda parent_pid, proc="/proc", threads=None: None
    else:
        lister = watchdog.ChildLister(pid)
        lister.known = watchdog.live_stubs(pid)
    try:
        start = time.process_time()
        for _ in range(calls):
            watchdog.stub_processes(pid, lister=lister)
        return (time.process_time() - start) / calls
    finally:
        watchdog._child_pids = original


def main(calls=400, pid=None, rounds=5):
    children = [] if pid else [subprocess.Popen(["sleep", "60"]) for _ in range(4)]
    pid = pid or os.getpid()
    try:
        assert watchdog._child_pids(pid) is not None, "this kernel has no /proc/<pid>/task/<tid>/children"
        best = {True: float("inf"), False: float("inf")}
        for _ in range(rounds):
            for scan in (True, False):
                best[scan] = min(best[scan], cpu_per_call(calls, scan, pid))
    finally:
        for child in children:
            child.kill()
            child.wait()
    processes = sum(entry.isdigit() for entry in os.listdir("/proc"))
    for scan, label in ((True, "scan of /proc (before)"), (False, "children files (now)")):
        print(
            f"{label:24s} {best[scan] * 1e3:7.3f} ms CPU per poll, "
            f"{best[scan] * 1e3 * POLLS_PER_S:7.3f} ms CPU per second"
        )
    threads = len(os.listdir(f"/proc/{pid}/task"))
    print(
        f"ratio {best[True] / best[False]:.1f}x; {processes} processes in /proc, {threads} threads in the parent, "
        f"{len(watchdog.live_stubs(pid))} stubs; load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400, int(sys.argv[2]) if len(sys.argv) > 2 else None)
