"""Which project files go into a model repository, and copying them safely.

As Cortex's CLI collected a project (cli/cmd/deploy.go, v0.33): hidden files and folders (a name
starting with '.') are never copied, nor Python's generated files; `.tritonizeignore` and
`.cortexignore` exclude more with gitignore's rules (pathspec's GitIgnoreSpec: `!` negation, `**`,
anchoring). The project's `.env` is not copied either: build reads it (adapter/dotenv_file.py)
into the API's environment.
"""

import fnmatch
import os
import shutil

import pathspec

from tritonize.errors import BuildError

IGNORE_FILES = (".tritonizeignore", ".cortexignore")
# Not hidden, never part of what a predictor needs (hidden ones, .git, .venv, ..., are skipped anyway).
ALWAYS_IGNORED_DIRS = {"__pycache__", "venv", "node_modules"}
ALWAYS_IGNORED_FILES = ("*.pyc", "*.pyo", "*.pyd")
# What an interrupted `tritonize build` leaves next to its output (adapter/repository.py): the
# staging folder and the previous repository moved aside. Never part of a project.
BUILD_LEFTOVERS = (".tritonize-build-*", "*.old-.tritonize-build-*")


def is_hidden(name):
    return name.startswith(".")


def read_project_text(path, what, hint=""):
    """A project's own text file (.env, an ignore file), UTF-8 (a BOM allowed): a BuildError, never a
    traceback, when it cannot be read or decoded."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BuildError(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BuildError(f"{path}: not UTF-8 text (byte {exc.start}){hint}") from None


def _read_ignore_file(path):
    return read_project_text(path, "the ignore file", "; save the ignore file as UTF-8").splitlines()


class IgnoreRules:
    """The project's ignore files (gitignore semantics) plus the rules that always apply."""

    def __init__(self, patterns=(), sources=()):
        try:
            self.spec = pathspec.GitIgnoreSpec.from_lines(list(patterns))
        except (ValueError, TypeError) as exc:  # pathspec refuses a few malformed patterns
            raise BuildError(f"{', '.join(sources) or 'ignore rules'}: {exc}") from None
        self.sources = list(sources)

    @classmethod
    def for_project(cls, project_dir):
        """Read .tritonizeignore then .cortexignore (both apply); BuildError if one cannot be read."""
        lines, sources = [], []
        for name in IGNORE_FILES:
            path = os.path.join(project_dir, name)
            if os.path.lexists(path):
                lines.extend(_read_ignore_file(path))
                sources.append(name)
        return cls(lines, sources)

    def ignored(self, rel_path, is_dir):
        """One entry, its folders already kept: rel_path is '/'-separated, relative to the project."""
        base = rel_path.rsplit("/", 1)[-1]
        if is_hidden(base):
            return True
        if is_dir and (base in ALWAYS_IGNORED_DIRS or any(fnmatch.fnmatch(base, p) for p in BUILD_LEFTOVERS)):
            return True
        if not is_dir and any(fnmatch.fnmatch(base, p) for p in ALWAYS_IGNORED_FILES):
            return True
        return self.spec.match_file(rel_path + "/" if is_dir else rel_path)

    def excluded(self, rel_path):
        """Whether a file is left out, by its own name or one of its folders' (as the copy walks)."""
        parts = rel_path.split("/")
        for i in range(1, len(parts)):
            if self.ignored("/".join(parts[:i]), True):
                return True
        return self.ignored(rel_path, False)


def excluded_predictor_warning(api_name, project_dir, predictor_path):
    """A warning when the project's rules leave the predictor file itself out of the repository."""
    rules = IgnoreRules.for_project(project_dir)
    if not rules.excluded(predictor_path):
        return None
    by = " or ".join(rules.sources) if rules.sources else "the hidden-file rule"
    return (
        f"{api_name}: the predictor {predictor_path} is excluded from the project copy (hidden, or matched by "
        f"{by}); the API cannot load: keep it out of the ignore rules"
    )


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
