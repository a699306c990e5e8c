"""Was a crashed worker killed by the kernel's OOM killer? The cgroup's OOM-kill counter says.

The kernel counts every process it OOM-kills (a cgroup's memory limit or the whole machine out of memory)
in the victim's memory cgroup: cgroup v2 `memory.events` (`oom_kill`, counting the cgroup's descendants),
cgroup v1 `memory.oom_control` (`oom_kill`). A job's workers (Triton's stub processes) are in the cgroup of
the Cortex endpoint's process, under serve as in a container or pod, so the counter read before a batch and
again when its worker crashed rose iff a process of this cgroup was OOM-killed meanwhile. Another process
of the same cgroup OOM-killed at that moment would be counted too (rare: the crash is the same event);
a worker in another cgroup is never counted, and without a readable counter nothing is told (None).
"""

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def counter_paths(proc_cgroup="/proc/self/cgroup", root=CGROUP_ROOT):
    """The candidate files holding this process's cgroup OOM-kill counter, most specific first."""
    try:
        with open(proc_cgroup, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    paths = []
    for line in lines:
        number, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.strip("/")
        if number == "0" and controllers == "":  # cgroup v2 (inside a cgroup namespace the path is "/")
            paths += [os.path.join(root, relative, "memory.events"), os.path.join(root, "memory.events")]
        elif "memory" in controllers.split(","):  # cgroup v1
            paths += [
                os.path.join(root, "memory", relative, "memory.oom_control"),
                os.path.join(root, "memory", "memory.oom_control"),
            ]
    return list(dict.fromkeys(path for path in paths if os.path.isfile(path)))


def read_oom_kills(path):
    """The `oom_kill` count in a memory.events / memory.oom_control file, or None if unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


class OomCounter:
    """read() -> this cgroup's OOM kills so far, or None when they cannot be told."""

    def __init__(self, path=None):
        if path is None:
            paths = counter_paths()
            path = next((candidate for candidate in paths if read_oom_kills(candidate) is not None), None)
        self.path = path

    def read(self):
        return None if self.path is None else read_oom_kills(self.path)

    def rose_since(self, before):
        """True if OOM kills happened since `before` (an earlier read()); False when unknown."""
        now = self.read()
        return before is not None and now is not None and now > before
