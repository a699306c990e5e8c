"""Keeping a secret out of a child process's command line (what `ps` shows to every user)."""


def hide_from_argv(pid, secret):
    """Overwrite `secret` in a child's command line (/proc/<pid>/cmdline, what `ps` shows).

    Triton 2.51 takes the admin token only as a flag; once it has parsed its flags (it answers
    /v2/health/live), the copy in its argv memory is no longer read and can be blanked. Needs
    ptrace rights over the child (the default Yama scope 1 allows a parent); False if not done."""
    if not secret:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        arg_start, arg_end = int(fields[45]), int(fields[46])  # stat fields 48 and 49
        with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
            mem.seek(arg_start)
            argv = mem.read(arg_end - arg_start)
            hidden = argv.replace(secret.encode(), b"*" * len(secret.encode()))
            if hidden != argv:
                mem.seek(arg_start)
                mem.write(hidden)
        return True
    except (OSError, IndexError, ValueError):
        return False
