"""`tritonize serve --watch SOURCE`: build SOURCE into serve's work folder, then rebuild and reload
an API through Triton's model control when one of its project files changes.

Polling (mtime, size and inode of every file the build would copy) needs no watcher dependency and
sees every way an editor saves: in place, or a new file renamed over the old one. A reload replaces
the API's folder in the served repository and asks Triton to load it with a config that differs by a
nonce (the way server/admin.py reloads): Triton starts the new instances while the old ones keep
answering, and switches only once they are ready. If the build or the load fails, the previous folder
is put back, the previous version keeps serving, and the user's error is shown.
"""

import fnmatch
import os
import shutil
import stat
import tempfile
import threading
import time
import traceback

from google.protobuf import json_format

from tritonize.adapter.build import apply_instance_overrides, load_apis
from tritonize.adapter.built_repository import read_model_config
from tritonize.adapter.project_env import DOTENV_FILE
from tritonize.adapter.project_files import IGNORE_FILES, IgnoreRules
from tritonize.adapter.repository import build_repository
from tritonize.adapter.runtime.constants import RELOAD_PARAMETER
from tritonize.errors import AdminError, TritonizeError
from tritonize.server.stale_runs import WORKDIR_PREFIX

POLL_S = 0.2
# A save is often several writes (or a write and a rename): reload once the files stop changing.
SETTLE_S = 0.1
SETTLE_MAX_S = 2.0
# Files editors write beside the one being saved (vim's swap and probe files, emacs' lock and
# autosave files, backups): a change to them alone is no edit of the project.
EDITOR_FILES = ("*.swp", "*.swx", "*.swo", "*~", ".#*", "#*#", "4913", "*.tmp", ".*.kate-swp")


def _inside(path, folder):
    return path == folder or path.startswith(folder + os.sep)


def own_output_files():
    """(device, inode) of the files serve's own output goes to: `serve --watch ... > log` inside the
    project must not reload on every line it writes."""
    found = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.add((st.st_dev, st.st_ino))
    return found


def project_snapshot(project_dir, skip=frozenset()):
    """{absolute path: (mtime_ns, size, inode)} of the files a build reads from project_dir: those it
    copies, and the hidden ones that decide the build (the ignore files, .env); skip: (device, inode)
    of files never to count."""
    rules = IgnoreRules.for_project(project_dir)
    found = {}
    for name in (*IGNORE_FILES, DOTENV_FILE):  # hidden, never copied, but they change the build
        try:
            st = os.stat(os.path.join(project_dir, name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in skip:
            found[os.path.join(project_dir, name)] = (st.st_mtime_ns, st.st_size, st.st_ino)
    for root, dirs, files in os.walk(project_dir):
        rel_root = os.path.relpath(root, project_dir)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        dirs[:] = [
            name
            for name in dirs
            if not rules.ignored(rel_root + name, True) and not os.path.isfile(os.path.join(root, name, "pyvenv.cfg"))
        ]
        for name in files:
            if rules.ignored(rel_root + name, False) or any(fnmatch.fnmatch(name, p) for p in EDITOR_FILES):
                continue
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:  # removed meanwhile, or a broken link
                continue
            if (st.st_dev, st.st_ino) in skip:
                continue
            found[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return found


def changed_files(before, after):
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def affected_apis(apis, changed, spec_file=None):
    """Names of the APIs to rebuild for these changed files: every API when the spec file changed;
    else each API whose project holds a changed file, except a file that is another API's predictor
    (one predictor's edit reloads that API alone, though every API's project holds it)."""
    if spec_file is not None and spec_file in changed:
        return [api.name for api in apis]
    predictors = {api.name: os.path.join(api.project_dir, api.predictor_path) for api in apis}
    names = []
    for api in apis:
        others = {path for name, path in predictors.items() if name != api.name} - {predictors[api.name]}
        if any(_inside(path, api.project_dir) and path not in others for path in changed):
            names.append(api.name)
    return names


def load_config_json(model_dir, nonce):
    """The model's config.pbtxt as the JSON Triton's load API takes, with a reload nonce."""
    repository, name = os.path.split(os.path.normpath(model_dir))
    config = json_format.MessageToDict(read_model_config(repository, name), preserving_proto_field_name=True)
    config.setdefault("parameters", {})[RELOAD_PARAMETER] = {"string_value": f"watch-{nonce}"}
    return config


def syntax_report(apis):
    """Python's own rendering (file, line, caret) of a syntax error in a predictor file, or ''."""
    for api in apis:
        path = os.path.join(api.project_dir, api.predictor_path)
        try:
            with open(path, encoding="utf-8") as f:
                compile(f.read(), path, "exec")
        except SyntaxError as exc:
            return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return ""


class WatchedSource:
    """The build of SOURCE that `serve --watch` serves, and the thread that keeps it current.

    Use as a context manager: the work folder is removed on exit (a SIGKILLed serve's is removed by
    the next serve, as its other leftovers: the folder carries serve's pid)."""

    def __init__(self, source, kind=None, out=print):
        self.source = os.path.abspath(source)
        self.spec_file = self.source if self.source.endswith((".yaml", ".yml")) else None
        self.kind = kind  # "cpu" for serve --cpu: build every API for CPU instances
        self.out = out
        self.workdir = None
        self.repository = None
        self.apis = []
        self.server = None
        self.ready_timeout_s = 300.0
        self._stop = threading.Event()
        self._thread = None
        self._reloads = 0

    # -- building ----------------------------------------------------------------------------------

    def _load_apis(self):
        return apply_instance_overrides(load_apis(self.source), kind=self.kind)

    def __enter__(self):
        self.workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-watch-")
        try:
            self.apis = self._load_apis()
            self.repository = build_repository(self.apis, os.path.join(self.workdir, "model_repository"))
        except BaseException:
            self.close()
            raise
        self._snapshots = self._snapshot()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.stop()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _snapshot(self):
        skip = own_output_files()
        return {folder: project_snapshot(folder, skip) for folder in sorted({api.project_dir for api in self.apis})}

    # -- watching ----------------------------------------------------------------------------------

    def start(self, server, ready_timeout_s=300.0):
        """Watch from now on, reloading through server.admin (the launcher's, whatever restarts it)."""
        self.server, self.ready_timeout_s = server, ready_timeout_s
        self.out(f"[watch] watching {len(self._snapshots)} project folder(s) of {self.source}; save a file to reload")
        self._thread = threading.Thread(target=self._run, name="tritonize-watch", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self._thread = None

    def _run(self):
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except Exception as exc:  # the watcher must outlive anything one change does
                self.out(f"[watch] error: {exc!r}; still watching")

    def poll(self):
        """One look at the files; rebuild and reload what changed. Returns the APIs reloaded."""
        current = self._snapshot()
        if current == self._snapshots:
            return []
        seen = time.monotonic()
        deadline = seen + SETTLE_MAX_S
        while time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(SETTLE_S)
            settled = self._snapshot()
            if settled == current:
                break
            current = settled
        changed = sorted(
            {
                path
                for folder in current.keys() | self._snapshots.keys()
                for path in changed_files(self._snapshots.get(folder, {}), current.get(folder, {}))
            }
        )
        self._snapshots = current
        names = affected_apis(self.apis, changed, self.spec_file)
        if not names:
            return []
        return self.reload(names, changed, seen)

    def reload(self, names, changed=(), seen=None):
        """Rebuild the named APIs from SOURCE and reload each; the previous version serves on failure."""
        seen = time.monotonic() if seen is None else seen
        what = ", ".join(os.path.relpath(p, os.path.dirname(self.source)) for p in changed[:3])
        what += f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        self.out(f"[watch] changed: {what or '(forced)'}; rebuilding {', '.join(names)}")
        try:
            apis = self._load_apis()
        except TritonizeError as exc:
            self._report_failure(names, f"{exc}\n{syntax_report(self.apis)}".rstrip())
            return []
        served = {api.name for api in self.apis}
        by_name = {api.name: api for api in apis}
        for name in sorted(by_name.keys() - served):
            self.out(f"[watch] {name}: a new API in {self.source}; restart serve to add it")
        for name in sorted(served - by_name.keys()):
            self.out(f"[watch] {name}: no longer in {self.source}; restart serve to remove it (still serving)")
        if self.spec_file is not None:  # the spec decides which APIs a change concerns from now on
            self.apis = [by_name.get(api.name, api) for api in self.apis]
        selected = [by_name[name] for name in names if name in by_name]
        if not selected:
            return []
        self._reloads += 1
        staging = os.path.join(self.workdir, f"next-{self._reloads}")
        try:
            build_repository(selected, staging)
        except TritonizeError as exc:
            self._report_failure(names, f"{exc}\n{syntax_report(selected)}".rstrip())
            return []
        reloaded = []
        try:
            for api in selected:
                if api.batch:
                    self._swap_batch(api.name, staging)
                    reloaded.append(api.name)
                elif self._swap_and_load(api.name, staging, seen):
                    reloaded.append(api.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return reloaded

    def _swap_batch(self, name, staging):
        """A BatchAPI is loaded by its jobs, never here: the next job (or a running job's healed worker) runs
        the new build. The previous folder stays until serve stops: a running job's workers run in it."""
        served = os.path.join(self.repository, name)
        os.rename(served, os.path.join(self.workdir, f"previous-{self._reloads}-{name}"))
        os.rename(os.path.join(staging, name), served)
        self.out(f"[watch] {name}: rebuilt; a BatchAPI is loaded by its jobs: the next job runs this version")

    def _swap_and_load(self, name, staging, seen):
        served = os.path.join(self.repository, name)
        previous = os.path.join(self.workdir, f"previous-{self._reloads}-{name}")
        os.rename(served, previous)  # the old instances run in it (their cwd): keep it until they are gone
        os.rename(os.path.join(staging, name), served)
        status_dir = getattr(self.server, "status_dir", None)
        error_file = os.path.join(status_dir, f"{name}.load-error.txt") if status_dir else None
        if error_file and os.path.exists(error_file):
            os.unlink(error_file)
        started = time.monotonic()
        try:
            self.server.admin.load(name, load_config_json(served, self._reloads), timeout=self.ready_timeout_s)
        except (AdminError, OSError) as exc:
            shutil.rmtree(served, ignore_errors=True)
            os.rename(previous, served)  # a later reload (the watchdog's too) loads the version that works
            reason = ""
            if error_file and os.path.exists(error_file):
                with open(error_file, encoding="utf-8") as f:
                    reason = f.read().rstrip()
                os.unlink(error_file)  # shown now; serve's later failure reports must not repeat it
            self._report_failure([name], reason or str(exc))
            return False
        shutil.rmtree(previous, ignore_errors=True)
        now = time.monotonic()
        self.out(f"[watch] {name}: reloaded in {now - started:.2f} s ({now - seen:.2f} s after the change was seen)")
        return True

    def _report_failure(self, names, reason):
        self.out(f"[watch] {', '.join(names)}: not reloaded; the previous version keeps serving:\n{reason}")
