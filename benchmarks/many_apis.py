"""Many APIs on one server (issue 28 item 4): N echo APIs in one cortex.yaml, time to ready and memory per instance.

    python benchmarks/many_apis.py [--apis 20] [--reps 3] [--runtime-from GIT-REV]

Compares, in interleaved rounds of one run: `tritonize serve` of one cortex.yaml with N echo APIs
(benchmarks/projects/echo) against N copies of the hand-written echo model.py
(benchmarks/projects/handwritten) on a plain tritonserver; with --runtime-from, a third server
runs the same tritonize repository with model.py and tritonize_runtime/ of another git revision
(before/after a runtime change, measured side by side). Reports, medians over rounds: seconds from
starting the server to every model answering ready, and each idle instance (stub) process's
memory: RSS, PSS (shared pages divided among the processes sharing them) and USS (its private
pages), in MB (10^6 bytes), from /proc/<pid>/smaps_rollup, and the CPU time each instance process
spent getting ready (start, imports, initialize): on a shared machine the seconds to ready move
with the load, the CPU time far less.
"""

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import harness  # noqa: E402

ECHO = os.path.join(HERE, "projects", "echo", "predictor.py")
HANDWRITTEN = os.path.join(HERE, "projects", "handwritten", "echo_raw")
STUB = "triton_python_b"  # the stub's /proc comm (15 characters of triton_python_backend_stub)
# After ready: instances are idle, so their memory no longer moves.
SETTLE_S = 1.0


def tritonize(*args):
    subprocess.run([sys.executable, "-m", "tritonize.cli", *args], check=True, capture_output=True, text=True)


def api_names(count):
    return [f"echo-{i:02d}" for i in range(count)]


def build_tritonize_repo(work, count):
    """One cortex.yaml with `count` echo APIs -> a tritonize repository."""
    project = os.path.join(work, "project")
    os.makedirs(project)
    shutil.copy(ECHO, os.path.join(project, "predictor.py"))
    with open(os.path.join(project, "cortex.yaml"), "w") as f:
        for name in api_names(count):
            f.write(f"- name: {name}\n  kind: RealtimeAPI\n  predictor:\n    type: python\n    path: predictor.py\n")
    repo = os.path.join(work, "tritonize_repo")
    tritonize("build", os.path.join(project, "cortex.yaml"), "-o", repo)
    return repo


def build_handwritten_repo(work, count):
    """`count` copies of the hand-written echo model.py, each under its own model name."""
    repo = os.path.join(work, "handwritten_repo")
    for name in api_names(count):
        model = os.path.join(repo, name)
        shutil.copytree(HANDWRITTEN, model)
        config = os.path.join(model, "config.pbtxt")
        with open(config) as f:
            text = f.read().replace('name: "echo_raw"', f'name: "{name}"')
        with open(config, "w") as f:
            f.write(text)
    return repo


def swap_runtime(repo, revision, work):
    """A copy of `repo` whose APIs run model.py and tritonize_runtime/ of git `revision`."""
    source = os.path.join(work, f"runtime-{revision}")
    os.makedirs(source)
    archive = subprocess.run(
        ["git", "-C", ROOT, "archive", revision, "adapter/runtime", "model_repository_template/model.py"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
    copy = os.path.join(work, f"tritonize_repo-{revision}")
    shutil.copytree(repo, copy, symlinks=True)
    for name in os.listdir(copy):
        version = os.path.join(copy, name, "1")
        if not os.path.isdir(os.path.join(version, "tritonize_runtime")):
            continue
        shutil.rmtree(os.path.join(version, "tritonize_runtime"))
        shutil.copytree(os.path.join(source, "adapter", "runtime"), os.path.join(version, "tritonize_runtime"))
        shutil.copy(os.path.join(source, "model_repository_template", "model.py"), os.path.join(version, "model.py"))
    return copy


def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def memory_mb(pid):
    """-> {rss, pss, uss} in MB (10^6 bytes) from /proc/<pid>/smaps_rollup, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            fields = {line.split(":")[0]: int(line.split()[1]) for line in f if line.strip().endswith("kB")}
    except OSError:
        return None
    kb = 1024 / 1e6
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss": fields["Rss"] * kb, "pss": fields["Pss"] * kb, "uss": uss * kb, "cpu_ms": cpu_ms(pid)}


def cpu_ms(pid):
    """CPU time the process (all its threads) has run, from /proc/<pid>/schedstat (nanoseconds; stat's
    utime + stime count 10 ms ticks)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def wait_all_ready(http, names, proc, started, timeout=300):
    """Seconds from `started` until every model answers ready (Triton's /v2/health/ready came first)."""
    pending = list(names)
    while pending:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"models not ready after {timeout} s: {pending}")
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode})")
        name = pending[0]
        try:
            with urllib.request.urlopen(f"http://{http}/v2/models/{name}/ready", timeout=1) as response:
                if response.status == 200:
                    pending.pop(0)
                    continue
        except OSError:
            pass
        time.sleep(0.01)
    return time.monotonic() - started


def measure(server, names):
    """Start one server -> {ready_s, stubs: [{rss, pss, uss}], tritonserver_rss}."""
    started = time.monotonic()
    context, addresses = server()
    with context as proc:
        ready_s = wait_all_ready(addresses.http, names, proc, started)
        time.sleep(SETTLE_S)
        stubs, triton_rss = [], 0.0
        for pid in descendants(proc.pid):
            name = comm(pid)
            mem = memory_mb(pid)
            if mem is None:
                continue
            if name == STUB:
                stubs.append(mem)
            elif name == "tritonserver":
                triton_rss = mem["rss"]
    if len(stubs) != len(names):
        raise RuntimeError(f"expected {len(names)} instance processes, found {len(stubs)}")
    return {"ready_s": ready_s, "stubs": stubs, "tritonserver_rss": triton_rss}


def summary(results):
    """Medians over rounds of: ready seconds, and the median instance's RSS/PSS/USS and CPU time."""
    row = {"ready_s": statistics.median(r["ready_s"] for r in results)}
    for key in ("rss", "pss", "uss", "cpu_ms"):
        row[key] = statistics.median(statistics.median(s[key] for s in r["stubs"]) for r in results)
    row["tritonserver_rss"] = statistics.median(r["tritonserver_rss"] for r in results)
    return row


def load():
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


TRITONIZE_LABEL, HANDWRITTEN_LABEL = "tritonize serve", "hand-written model.py, plain tritonserver"


def compare(count, reps, work, runtime_from=None):
    """N APIs on each server, in interleaved rounds -> {label: summary()}; prints each round."""
    names = api_names(count)
    repo = build_tritonize_repo(work, count)
    plain = build_handwritten_repo(work, count)
    servers = {TRITONIZE_LABEL: lambda: harness.tritonize_serve(repo)}
    if runtime_from:
        old = swap_runtime(repo, runtime_from, work)
        servers[f"tritonize serve, runtime of {runtime_from}"] = lambda: harness.tritonize_serve(old)
    servers[HANDWRITTEN_LABEL] = lambda: harness.plain_tritonserver(
        plain,
        tempfile.mkdtemp(dir=work),  # a backend dir of its own per start
    )
    raw = {}
    for _ in range(reps):
        for label, server in servers.items():
            result = measure(server, names)
            raw.setdefault(label, []).append(result)
            row = summary([result])
            print(
                f"  {label:<48} ready {row['ready_s']:5.2f} s  instance RSS {row['rss']:5.1f} MB  "
                f"PSS {row['pss']:5.1f} MB  CPU {row['cpu_ms']:4.0f} ms  load {load()}",
                flush=True,
            )
    return {label: summary(results) for label, results in raw.items()}


def table(rows):
    lines = [
        "| server | ready (s) | instance RSS (MB) | instance PSS (MB) | instance USS (MB) | instance CPU to ready (ms) "
        "| tritonserver RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        lines.append(
            f"| {label} | {row['ready_s']:.2f} | {row['rss']:.1f} | {row['pss']:.1f} | {row['uss']:.1f} | "
            f"{row['cpu_ms']:.0f} | {row['tritonserver_rss']:.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apis", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--runtime-from", metavar="GIT-REV", help="also run the repository with the runtime of this git revision"
    )
    args = parser.parse_args()
    print(f"{args.apis} echo APIs, {args.reps} interleaved rounds; {os.cpu_count()} CPUs; load average {load()}")
    with tempfile.TemporaryDirectory(prefix="many-apis-") as work:
        rows = compare(args.apis, args.reps, work, args.runtime_from)
    print(f"\nmedians ({args.apis} APIs, {args.reps} rounds; load average at the end {load()}):\n")
    print(table(rows))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
