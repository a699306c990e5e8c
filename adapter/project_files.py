"""Which project files go into a model repository, and copying them safely."""

import fnmatch
import os
import shutil

from tritonize.errors import BuildError

IGNORE_FILES = (".tritonizeignore", ".cortexignore")
ALWAYS_IGNORED_DIRS = {
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".ipynb_checkpoints",
    "node_modules",
}
ALWAYS_IGNORED_FILES = ("*.pyc", "*.pyo", ".DS_Store")
# What an interrupted `tritonize build` leaves next to its output (adapter/repository.py): the
# staging folder and the previous repository moved aside. Never part of a project.
BUILD_LEFTOVERS = (".tritonize-build-*", "*.old-.tritonize-build-*")


class IgnoreRules:
    """A small subset of .gitignore: globs, `dir/` for directories, `/x` anchored, `#` comments."""

    def __init__(self, patterns=()):
        self.patterns = []
        for line in patterns:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            anchored = line.startswith("/") or "/" in line
            self.patterns.append((line.lstrip("/"), dir_only, anchored))

    @classmethod
    def for_project(cls, project_dir):
        lines = []
        for name in IGNORE_FILES:
            path = os.path.join(project_dir, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    lines.extend(f.read().splitlines())
        return cls(lines)

    def ignored(self, rel_path, is_dir):
        base = rel_path.rsplit("/", 1)[-1]
        if is_dir and (base in ALWAYS_IGNORED_DIRS or any(fnmatch.fnmatch(base, p) for p in BUILD_LEFTOVERS)):
            return True
        if not is_dir and any(fnmatch.fnmatch(base, p) for p in ALWAYS_IGNORED_FILES):
            return True
        for pattern, dir_only, anchored in self.patterns:
            if dir_only and not is_dir:
                continue
            target = rel_path if anchored else base
            if fnmatch.fnmatch(target, pattern):
                return True
        return False


def _is_inside(path, root):
    return path == root or path.startswith(root + os.sep)


def _walked_folders(project_dir, rel_root):
    """The real paths of the folders on the way from the project to rel_root (links followed)."""
    parts = [p for p in rel_root.split("/") if p]
    return [os.path.realpath(os.path.join(project_dir, *parts[:i])) for i in range(len(parts) + 1)]


def copy_project(project_dir, dest_dir, exclude=()):
    """Copy project_dir to dest_dir; symlinks may not point outside the project.

    `exclude`: absolute real paths never copied (the output repository itself,
    when it lives inside the project). Returns the number of files copied.
    """
    project_dir = os.path.realpath(project_dir)
    rules = IgnoreRules.for_project(project_dir)
    excluded = [os.path.realpath(p) for p in exclude]
    copied = 0
    for root, dirs, files in os.walk(project_dir, followlinks=True):
        rel_root = os.path.relpath(root, project_dir)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        kept = []
        for name in sorted(dirs):
            full = os.path.join(root, name)
            if rules.ignored(rel_root + name, True) or os.path.isfile(os.path.join(full, "pyvenv.cfg")):
                continue
            if any(_is_inside(os.path.realpath(full), e) for e in excluded):
                continue
            if os.path.islink(full):
                target = os.path.realpath(full)
                if not _is_inside(target, project_dir):
                    raise BuildError(f"{rel_root}{name} links outside the project (to {target}); refusing to copy it")
                if any(_is_inside(folder, target) for folder in _walked_folders(project_dir, rel_root)):
                    raise BuildError(
                        f"{rel_root}{name} links to a folder it is inside of (a loop); refusing to copy it"
                    )
                # A link to a folder inside the project: copied as a folder (the predictor may import through it).
            kept.append(name)
        dirs[:] = kept
        os.makedirs(os.path.join(dest_dir, rel_root), exist_ok=True)
        for name in sorted(files):
            rel = rel_root + name
            full = os.path.join(root, name)
            if rules.ignored(rel, False):
                continue
            target = os.path.realpath(full)
            if any(_is_inside(target, e) for e in excluded):
                continue
            if not _is_inside(target, project_dir):
                raise BuildError(f"{rel} links outside the project (to {target}); refusing to copy it")
            if not os.path.isfile(target):
                continue  # sockets, fifos, broken links
            shutil.copy2(target, os.path.join(dest_dir, rel))
            copied += 1
    return copied
