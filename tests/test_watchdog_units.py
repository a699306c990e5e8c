"""The watchdog's pure logic on a fabricated /proc: which children are stubs, which died
(zombies only), and the stubs a reload retires (issues 12 and 14)."""

import os
import subprocess

import pytest

from tritonize.health import stubs as watchdog
from tritonize.health.stubs import ChildLister, live_stubs, stub_processes
from tritonize.server.watchdog import StubWatchdog

SERVER = 500
REPO = "/tmp/repo"


def stub_argv(model, instance, shm=None):
    shm = shm or f"tritonize1_2_{instance}"
    return [
        "/opt/backends/python/triton_python_backend_stub",
        f"{REPO}/{model}/1/model.py",
        shm,
        "1048576",
        "1048576",
        str(SERVER),
        "/opt/backends/python",
        "8001",
        instance,
        "DEFAULT",
    ]


class FakeProc:
    """A /proc with tritonserver (pid SERVER, two threads) and whatever children a test adds."""

    def __init__(self, root, children_files=True):
        self.root, self.children_files = root, children_files
        self.processes = {}  # pid -> (parent, state, comm, argv)
        self.exit_status = {}  # pid -> exit status, once it exited
        self.add(SERVER, 1, "S", "tritonserver", ["tritonserver", "--model-repository", REPO])
        self.add(1, 0, "S", "init", ["/sbin/init"])

    def add(self, pid, parent, state, comm, argv):
        self.processes[pid] = (parent, state, comm, argv)
        self.write()

    def set_state(self, pid, state):
        parent, _, comm, argv = self.processes[pid]
        # A zombie keeps its stat line but has no command line.
        self.processes[pid] = (parent, state, comm, [] if state == "Z" else argv)
        self.write()

    def remove(self, pid):
        del self.processes[pid]
        self.write()

    def write(self):
        for entry in os.listdir(self.root) if os.path.isdir(self.root) else []:
            subprocess.run(["rm", "-rf", os.path.join(self.root, entry)], check=True)
        for pid, (parent, state, comm, argv) in self.processes.items():
            folder = os.path.join(self.root, str(pid))
            os.makedirs(folder)
            with open(os.path.join(folder, "stat"), "w") as f:
                rest = ["0"] * 45 + [str(self.exit_status.get(pid, 0) << 8)]  # up to field 52, exit_code
                f.write(f"{pid} ({comm}) {state} {parent} {pid} {pid} {' '.join(rest)}\n")
            with open(os.path.join(folder, "cmdline"), "wb") as f:
                f.write(b"\0".join(a.encode() for a in argv) + (b"\0" if argv else b""))
            kids = sorted(p for p, info in self.processes.items() if info[0] == pid)
            for i, tid in enumerate((pid, pid + 1000)):  # two threads; children spread over them
                task = os.path.join(folder, "task", str(tid))
                os.makedirs(task)
                if self.children_files:
                    with open(os.path.join(task, "children"), "w") as f:
                        f.write("".join(f"{k} " for k in kids[i::2]))


@pytest.fixture(params=[True, False], ids=["children-files", "proc-scan"])
def proc(tmp_path, request):
    return FakeProc(str(tmp_path / "proc"), children_files=request.param)


def test_stubs_are_parsed_from_their_command_line(proc):
    proc.add(601, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
    proc.add(602, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_1"))
    proc.add(603, SERVER, "S", "bash", ["bash", "-c", "exec something"])  # not a stub
    proc.add(604, 1, "S", "triton_python_b", stub_argv("other", "other_0_0"))  # another server's
    proc.add(605, SERVER, "S", "triton_python_b", ["/x/triton_python_backend_stub", "short"])  # too few args
    stubs = live_stubs(SERVER, str(proc.root))
    assert sorted(stubs) == [601, 602]
    assert (stubs[601].model, stubs[601].shm_region, stubs[601].instance) == (
        "echo",
        "tritonize1_2_echo_0_0",
        "echo_0_0",
    )


def test_only_zombie_stubs_count_as_dead(proc):
    proc.add(601, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
    proc.add(602, SERVER, "Z", "bash", [])  # a zombie that is not a stub
    proc.set_state(601, "Z")
    stubs, zombies = stub_processes(SERVER, str(proc.root))
    assert stubs == {} and zombies == {601}


class Admin:
    def __init__(self):
        self.reloads, self.unloads = [], []
        self.states = {}  # model -> state; READY unless said otherwise
        self.configs = {}

    def model_config(self, name):
        return self.configs.get(name, {"instance_group": [{"count": 1}]})

    def index(self, timeout=None):
        models = {"echo", "other", "late", *self.states}
        return [{"name": name, "state": self.states.get(name, "READY")} for name in sorted(models)]

    def reload(self, name, nonce, timeout=None):
        self.reloads.append(name)

    def unload(self, name):
        self.unloads.append(name)


def watched(proc, shm_dir="/nonexistent"):
    events, admin = [], Admin()
    dog = StubWatchdog(SERVER, admin, "tritonize1_2_", report=events.append, proc=proc.root, shm_dir=shm_dir)
    dog.tracker.known = live_stubs(SERVER, proc.root)
    return dog, admin, events


def test_a_dying_stub_reloads_its_model_once_and_a_vanished_one_never(proc):
    proc.add(601, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
    proc.add(701, SERVER, "S", "triton_python_b", stub_argv("other", "other_0_0"))
    dog, admin, events = watched(proc)
    proc.remove(701)  # Triton stopped it (an unload through the admin API): reaped, gone
    dog.check()
    assert admin.reloads == [] and events == []
    proc.set_state(601, "Z")
    dog.check()
    assert admin.reloads == ["echo"]
    assert "instance process echo_0_0 (pid 601) died" in events[0] and "reloaded in" in events[-1]
    dog.check()  # still a zombie: not handled twice
    assert admin.reloads == ["echo"]


def test_the_other_instances_a_reload_replaced_are_not_crashes(proc):
    proc.add(601, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
    proc.add(602, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_1"))
    dog, admin, events = watched(proc)
    proc.set_state(601, "Z")
    dog.check()
    assert admin.reloads == ["echo"] and 602 in dog.tracker._retired
    # The reload's fresh stubs appear; the old instance 602 ends as Triton replaces it.
    proc.remove(601)
    proc.add(611, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
    proc.set_state(602, "Z")
    dog.check()
    assert admin.reloads == ["echo"]  # 602 was retired, not a new crash
    proc.remove(602)
    dog.check()
    assert 602 not in dog.tracker._retired and 611 in dog.tracker.known  # forgotten once gone; the fresh one is watched
    proc.set_state(611, "Z")
    dog.check()
    assert admin.reloads == ["echo", "echo"]  # a fresh stub's death is a crash again


def test_a_reused_pid_in_a_children_file_is_checked_against_its_parent(tmp_path):
    proc = FakeProc(str(tmp_path / "proc"))
    proc.add(601, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
    task = tmp_path / "proc" / str(SERVER) / "task" / str(SERVER) / "children"
    task.write_text("601 9999 ")  # 9999: listed a moment ago, gone now
    assert sorted(live_stubs(SERVER, str(proc.root))) == [601]


def test_the_real_children_of_this_process_are_found():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in watchdog._children(os.getpid())[0]
        listed = watchdog._child_pids(os.getpid())
        assert listed is None or child.pid in listed[0]
    finally:
        child.kill()
        child.wait()


def test_polls_read_few_files_yet_see_every_death_and_every_new_stub(tmp_path):
    proc = FakeProc(str(tmp_path / "proc"))
    proc.add(601, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
    lister = ChildLister(SERVER, proc.root)
    assert sorted(lister.children()) == [601]  # the first poll reads every thread
    assert lister._threads == {SERVER}  # then only those that had children
    # A stub started by another thread (FakeProc puts every second child on thread SERVER + 1000).
    proc.add(602, SERVER, "S", "triton_python_b", stub_argv("other", "other_0_0"))
    seen = [sorted(lister.children()) for _ in range(ChildLister.FULL_READ_EVERY)]
    assert seen[0] == [601] and seen[-1] == [601, 602]  # found at the next full read
    # A known stub's death is seen at the next poll, whichever thread's file lists it.
    lister.known = {602}
    lister._threads = {SERVER}
    proc.set_state(602, "Z")
    assert lister.children()[602][0] == "Z"


def test_a_stub_that_ended_for_its_request_timeout_is_reported_so():
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        proc = FakeProc(os.path.join(root, "proc"))
        proc.add(601, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
        dog, admin, events = watched(proc)
        proc.exit_status[601] = 124
        proc.set_state(601, "Z")
        assert watchdog.exit_status(601, proc.root) == 124
        dog.check()
        assert "died (it ended itself: a request ran over the API's request timeout)" in events[0]


def test_the_exit_status_of_a_real_zombie_is_read():
    child = subprocess.Popen(["sh", "-c", "exit 124"])
    try:
        import time

        deadline = time.monotonic() + 5
        while watchdog.exit_status(child.pid) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watchdog.exit_status(child.pid) == 124
    finally:
        child.wait()


def test_a_stub_that_died_before_it_was_ever_seen_is_found_by_elimination(proc):
    """Issue 23.13: an instance whose process exits right after __init__ returns may die between two
    polls: a zombie nobody saw alive, without a command line. The loaded model with fewer live
    instance processes than its config asks for lost it."""
    proc.add(601, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
    dog, admin, events = watched(proc)
    admin.configs = {"echo": {"instance_group": [{"count": 1, "kind": "KIND_CPU"}]},
                     "late": {"instance_group": [{"count": 2, "kind": "KIND_CPU"}]},
                     "other": {"instance_group": [{"count": 1, "kind": "KIND_GPU", "gpus": [0, 1]}]}}  # fmt: skip
    proc.add(701, SERVER, "S", "triton_python_b", stub_argv("late", "late_0_0"))  # one of its two is left
    for pid, instance in ((801, "other_0_0"), (802, "other_0_1")):
        proc.add(pid, SERVER, "S", "triton_python_b", stub_argv("other", instance))
    proc.add(602, SERVER, "Z", "triton_python_b", [])  # late_0_1: started and died between two polls
    dog.tracker.known = {pid: s for pid, s in live_stubs(SERVER, proc.root).items() if pid != 701}
    dog.check()
    assert admin.reloads == ["late"] and "instance process of late (pid 602) died" in events[0], events
    dog.check()  # the zombie stays until tritonserver reaps it: handled once
    assert admin.reloads == ["late"]


def test_a_death_while_the_model_loads_is_healed_once_it_is_loaded_and_not_if_its_load_failed(proc):
    proc.add(601, SERVER, "S", "triton_python_b", stub_argv("echo", "echo_0_0"))
    proc.add(701, SERVER, "S", "triton_python_b", stub_argv("other", "other_0_0"))
    dog, admin, events = watched(proc)
    admin.states = {"echo": "LOADING", "other": "LOADING"}
    proc.set_state(601, "Z")
    proc.set_state(701, "Z")
    dog.check()
    assert admin.reloads == [] and set(dog.pending) == {"echo", "other"}
    admin.states = {"echo": "READY", "other": "UNAVAILABLE"}  # echo loaded (with a dead instance); other failed
    dog.check()
    assert admin.reloads == ["echo"] and dog.pending == {}
