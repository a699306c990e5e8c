"""Which models and versions a multi-model location holds, by Cortex's folder rules.

A model folder whose top-level entries are all numeric folders is versioned (each folder is
a version, the highest is "latest"); one with no numeric folders is a single model, version
"1"; a mix is not a valid model. With `dir`, each top-level folder is a model.
"""

import hashlib
from collections import namedtuple

# location: the version's folder (local path or s3:// prefix); files: paths relative to it;
# fingerprint: changes when any file is added, removed or modified; timestamp: newest file (s).
VersionEntry = namedtuple("VersionEntry", "location files fingerprint timestamp")
UNVERSIONED = "1"


class InvalidModel(Exception):
    pass


def _fingerprint(listing):
    text = repr(sorted(listing.items())).encode("utf-8")
    return hashlib.sha1(text).hexdigest()[:16]


def split_versions(listing):
    """{relative path: stamp} of one model folder -> (versioned, {version: {relative path: stamp}})."""
    if not listing:
        raise InvalidModel("the folder is empty")
    groups, plain = {}, {}
    for rel, stamp in listing.items():
        head, sep, tail = rel.partition("/")
        if sep and head.isdigit() and head.isascii():
            groups.setdefault(head, {})[tail] = stamp
        else:
            plain[rel] = stamp
    if groups and plain:
        raise InvalidModel(
            "it mixes version folders (" + ", ".join(sorted(groups, key=int)) + ") with other files "
            "(" + ", ".join(sorted(plain)[:3]) + "); put every file inside a numeric version folder"
        )
    if plain:
        return False, {UNVERSIONED: plain}
    return True, groups


def model_entries(storage, location, listing):
    """-> {version: VersionEntry} for one model folder."""
    versioned, versions = split_versions(listing)
    entries = {}
    for version, files in versions.items():
        where = storage.join(location, version) if versioned else location
        newest = max(stamp[-1] for stamp in files.values()) // 10**9
        entries[version] = VersionEntry(where, tuple(sorted(files)), _fingerprint(files), newest)
    return entries


def discover(storage, models=(), models_dir=None):
    """-> ({model name: {version: VersionEntry}}, [problem text]).

    models: [(name, location)] for `path`/`paths`; models_dir: the `dir` location.
    A model that is missing or invalid is left out and reported in the problems.
    """
    found, problems = {}, []
    if models_dir is not None:
        listing = storage.list(models_dir)
        by_model = {}
        for rel, stamp in listing.items():
            head, sep, tail = rel.partition("/")
            if sep:
                by_model.setdefault(head, {})[tail] = stamp
        pairs = [(name, storage.join(models_dir, name), sub) for name, sub in sorted(by_model.items())]
    else:
        pairs = [(name, location, storage.list(location)) for name, location in models]
    for name, location, listing in pairs:
        try:
            found[name] = model_entries(storage, location, listing)
        except InvalidModel as exc:
            problems.append(f"model {name} at {location}: {exc}")
    return found, problems


def latest_version(versions, skip=()):
    """The highest version not in `skip`, or None."""
    candidates = [v for v in versions if v not in skip]
    return max(candidates, key=int) if candidates else None
