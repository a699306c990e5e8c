"""Keeping a secret out of a child process's command line (what `ps` shows to every user)."""


def hide_from_argv(pid, secret):
    """Overwrite `secret` in a child's command line (/proc/<pid>/cmdline, what `ps` shows).

    Triton 2.51 takes the admin token only as a flag; once it has parsed its flags (it answers
    /v2/health/live), the copy in its argv memory is no longer read and can be blanked. Needs
    ptrace rights over the child (the default Yama scope 1 allows a parent); False if not done."""
    return _blank(pid, secret, 45)  # stat fields 48 and 49: arg_start, arg_end


def hide_from_environ(pid, secret):
    """Overwrite `secret` in a process's initial environment (/proc/<pid>/environ, readable by every
    process of the same user: predictors too). Python's os.environ, a copy, keeps it; a process that
    forks afterwards passes the blanked memory on. False if not done."""
    return _blank(pid, secret, 47)  # stat fields 50 and 51: env_start, env_end


def _blank(pid, secret, start_index):
    if not secret:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start, end = int(fields[start_index]), int(fields[start_index + 1])
        with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            text = mem.read(end - start)
            hidden = text.replace(secret.encode(), b"*" * len(secret.encode()))
            if hidden != text:
                mem.seek(start)
                mem.write(hidden)
        return True
    except (OSError, IndexError, ValueError):
        return False
