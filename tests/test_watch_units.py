"""server/watch.py without Triton: what counts as a change, and which APIs a change reloads."""

import os
import subprocess
import sys
import textwrap

from tritonize.adapter.spec import load_spec_file
from tritonize.server.watch import affected_apis, changed_files, project_snapshot

SPEC = """\
- name: alpha
  kind: RealtimeAPI
  predictor: {type: python, path: alpha.py}
- name: beta
  kind: RealtimeAPI
  predictor: {type: python, path: beta.py}
"""
PREDICTOR = "class PythonPredictor:\n    def predict(self, payload):\n        return payload\n"


def project(tmp_path):
    (tmp_path / "cortex.yaml").write_text(SPEC)
    (tmp_path / "alpha.py").write_text(PREDICTOR)
    (tmp_path / "beta.py").write_text(PREDICTOR)
    return load_spec_file(str(tmp_path / "cortex.yaml"))


def test_a_save_by_rename_is_a_change_even_with_the_same_size_and_time(tmp_path):
    project(tmp_path)
    path = tmp_path / "alpha.py"
    before = project_snapshot(str(tmp_path))
    st = os.stat(path)
    tmp = tmp_path / ".alpha.py.new"
    tmp.write_text(PREDICTOR.replace("payload\n", "payloaD\n"))  # same size
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # same modification time
    os.replace(tmp, path)
    assert changed_files(before, project_snapshot(str(tmp_path))) == [str(path)]


def test_ignored_and_editor_files_are_not_watched(tmp_path):
    project(tmp_path)
    (tmp_path / ".tritonizeignore").write_text("data/\n*.csv\n")
    for name in ("data/big.bin", "table.csv", ".alpha.py.swp", "alpha.py~", "__pycache__/alpha.pyc", "4913"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    assert sorted(os.path.basename(p) for p in project_snapshot(str(tmp_path))) == [
        ".tritonizeignore",
        "alpha.py",
        "beta.py",
        "cortex.yaml",
    ]


def test_serves_own_log_inside_the_project_is_not_a_change(tmp_path):
    project(tmp_path)
    script = textwrap.dedent(
        f"""
        from tritonize.server.watch import own_output_files, project_snapshot
        print(sorted(project_snapshot({str(tmp_path)!r}, own_output_files())))
        """
    )
    with open(tmp_path / "serve.log", "w") as log:
        subprocess.run([sys.executable, "-c", script], stdout=log, check=True)
    listed = (tmp_path / "serve.log").read_text()
    assert "alpha.py" in listed and "serve.log" not in listed


def test_one_predictor_edit_reloads_that_api_alone(tmp_path):
    apis = project(tmp_path)
    spec = str(tmp_path / "cortex.yaml")
    assert affected_apis(apis, [str(tmp_path / "alpha.py")], spec) == ["alpha"]
    assert affected_apis(apis, [str(tmp_path / "beta.py")], spec) == ["beta"]
    # A helper module is in every API's project; the spec concerns every API.
    assert affected_apis(apis, [str(tmp_path / "helpers.py")], spec) == ["alpha", "beta"]
    assert affected_apis(apis, [spec], spec) == ["alpha", "beta"]
    assert affected_apis(apis, [str(tmp_path.parent / "elsewhere.py")], spec) == []


def test_a_batch_api_is_rebuilt_but_never_loaded_by_watch(tmp_path):
    """serve --watch: a BatchAPI's model is loaded by its jobs; a change swaps its build and loads nothing."""
    from tritonize.server.watch import WatchedSource

    (tmp_path / "cortex.yaml").write_text(
        SPEC + "- name: offline\n  kind: BatchAPI\n  predictor: {type: python, path: offline.py}\n"
    )
    (tmp_path / "alpha.py").write_text(PREDICTOR)
    (tmp_path / "beta.py").write_text(PREDICTOR)
    batch = "class PythonPredictor:\n    def predict(self, payload, batch_id):\n        pass\n"
    (tmp_path / "offline.py").write_text(batch)
    loads, lines = [], []

    class Admin:
        def load(self, name, config=None, timeout=None):
            loads.append(name)

    class Server:
        admin = Admin()

    with WatchedSource(str(tmp_path / "cortex.yaml"), out=lines.append) as watched:
        watched.server = Server()
        (tmp_path / "offline.py").write_text(batch.replace("pass", "return None"))
        assert watched.reload(["offline", "alpha"]) == ["offline", "alpha"]
        served = os.path.join(watched.repository, "offline", "1", "project", "offline.py")
        with open(served) as f:
            assert "return None" in f.read()
    assert loads == ["alpha"]
    assert any("offline: rebuilt; a BatchAPI is loaded by its jobs" in line for line in lines), lines
