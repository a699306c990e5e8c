"""What `serve` runs killed by SIGKILL leave behind, removed by the next start."""

import os
import re
import shutil
import tempfile

WORKDIR_PREFIX = "tritonize-serve-"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    return True


def remove_stale_leftovers(tmp_dir=None):
    """Work folders and /dev/shm regions of `serve` runs that died without cleaning up (SIGKILL).

    Both names carry the serve process's pid (tritonize-serve-<pid>-*, tritonize<pid>_*); those
    of pids that no longer run are removed. Returns what was removed."""
    removed = []
    pattern = re.compile(r"^" + re.escape(WORKDIR_PREFIX) + r"(\d+)-")
    tmp_dir = tmp_dir or tempfile.gettempdir()
    for entry in _listdir(tmp_dir):
        match = pattern.match(entry)
        path = os.path.join(tmp_dir, entry)
        if match and not _pid_alive(int(match.group(1))) and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for entry in _listdir("/dev/shm"):
        match = re.match(r"^tritonize(\d+)_\d+_", entry)
        if match and not _pid_alive(int(match.group(1))):
            try:
                os.unlink(os.path.join("/dev/shm", entry))
                removed.append(os.path.join("/dev/shm", entry))
            except OSError:
                pass
    return removed


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
