"""Which instance processes (python-backend stubs) of a tritonserver died.

Triton 2.51 keeps a model READY when its stub dies and never restarts it: every request then
fails with "Stub process ... is not healthy". A dead stub stays a zombie child of tritonserver
(Triton does not reap it); stubs Triton stopped itself (an unload, a reload) are reaped and
vanish. So **any zombie stub is a crash, whenever it died** - also one that died before anyone
saw it alive (right after its __init__ returned): its model is then found by elimination (fewer
live instance processes than the model's config asks for).

Each stub is one child: `triton_python_backend_stub <repo>/<model>/<version>/model.py <shm region>
... <instance name>`; a zombie has no command line, only /proc/<pid>/stat.
"""

import os

STUB_NAME = "triton_python_backend_stub"
# /proc/<pid>/stat's comm: the executable's name cut to 15 characters.
STUB_COMM = STUB_NAME[:15]
SHM_DIR = "/dev/shm"


class Stub:
    def __init__(self, pid, model, shm_region, instance):
        self.pid, self.model, self.shm_region, self.instance = pid, model, shm_region, instance

    def __repr__(self):
        return f"Stub({self.pid}, {self.model!r}, {self.instance!r})"


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


def read_stat(pid, proc="/proc"):
    """(state, comm, parent pid) of a process from /proc/<pid>/stat, or None if it is gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", errors="replace")
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        return fields[0], comm, int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def _child(pid, parent_pid, proc="/proc"):
    """(state, comm, argv) of process pid if it is parent_pid's child, else None (or if it is gone)."""
    stat = read_stat(pid, proc)
    if stat is None or stat[2] != parent_pid:  # another's (or a pid reused since it was listed)
        return None
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            argv = [a.decode("utf-8", errors="replace") for a in f.read().split(b"\0")]
    except OSError:
        return None
    return stat[0], stat[1], argv


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


def live_stubs(server_pid, proc="/proc"):
    """{pid: Stub} for the running (not exited) stubs of one tritonserver."""
    return stub_processes(server_pid, proc)[0]


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


def expected_instances(config):
    """How many instance processes a loaded model runs, from its config (Triton's JSON): each
    instance_group's count, per listed GPU. At least that many; a group on every GPU counts once."""
    total = 0
    for group in config.get("instance_group") or [{"count": 1}]:
        count = int(group.get("count", 1) or 1)
        total += count * max(1, len(group.get("gpus") or []))
    return total


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


class DeathTracker:
    """poll() -> [Stub] of the instances that died since the last poll: the one dead-instance rule.

    A known stub that became a zombie died. A zombie stub never seen alive (it died between two polls,
    e.g. right after its __init__ returned) died too, but its command line is gone: poll() counts it in
    `unexplained`, and the caller finds its model by elimination (a loaded model with fewer live
    instance processes than its config asks for: expected_instances()). retire(model) says the model's
    current stubs are being replaced (a reload): their exit is not a crash. Whether the model was
    loaded - and so whether the death needs healing - is the caller's question (the repository index).
    """

    def __init__(self, server_pid, proc="/proc"):
        self.server_pid, self.proc = server_pid, proc
        self.known = {}  # pid -> Stub, alive at the last poll
        self.unexplained = set()  # zombie stubs never seen alive, not yet put down to a model
        self._retired = set()  # pids of stubs Triton is stopping itself
        self._reported = set()  # zombie pids already reported (they stay until tritonserver exits)
        self._lister = ChildLister(server_pid, proc)

    def poll(self):
        self._lister.known = self.known
        live, zombies = stub_processes(self.server_pid, self.proc, self._lister)
        dead = [
            stub for pid, stub in self.known.items() if pid in zombies and pid not in self._retired | self._reported
        ]
        unknown = zombies - self.known.keys() - self._retired - self._reported
        self._reported |= {stub.pid for stub in dead} | unknown
        self.unexplained |= unknown
        self._retired &= set(live) | zombies
        self._reported &= zombies
        self.known = live
        return dead

    def retire(self, model):
        self._retired |= {pid for pid, stub in self.known.items() if stub.model == model}

    def refresh(self):
        """Take in the stubs running now (after a reload) without judging anything."""
        fresh = live_stubs(self.server_pid, self.proc)
        self.known.update({pid: stub for pid, stub in fresh.items() if pid not in self.known})
