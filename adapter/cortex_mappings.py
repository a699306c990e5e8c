"""Older Cortex spellings -> today's: the schema's "mapped" fields (adapter/spec_schema.py), moved
to where v0.33 keeps them, so the parsers read one spelling.

Each move is noted in the API's warnings once, naming both spellings; a spec that gives both
spellings with different values is an error.
"""

import copy

from tritonize.adapter.spec_schema import RealtimeApi, fields_with_status
from tritonize.errors import SpecError

_MISSING = object()


def apply_cortex_mappings(entry, where, warnings):
    """A schema-valid entry -> a copy in today's spelling; notes appended to `warnings`."""
    entry = copy.deepcopy(entry)
    name = entry.get("name")
    if entry.get("kind") == "api":
        entry["kind"] = "RealtimeAPI"
        warnings.append(f"{name}: kind: api read as kind: RealtimeAPI (Cortex v0.12's spelling)")
    for path, extra in fields_with_status("mapped", RealtimeApi).items():
        target = extra["x-tritonize-to"]
        key = path.rpartition(".")[2]
        sibling = target.startswith(".")  # in the same mapping, e.g. each models.paths[] item
        moved = False
        for holder in list(_holders(entry, path.split(".")[:-1])):
            if key not in holder:
                continue
            destination = holder if sibling else _ensure(entry, target.split(".")[:-1], f"{where}.{target}")
            _move(holder, key, destination, target.rpartition(".")[2], f"{where}.{path}", target.lstrip("."))
            moved = True
        if moved:
            new_path = f"{path.rpartition('.')[0]}{target}" if sibling else target
            warnings.append(f"{name}: {path} read as {new_path} (Cortex {extra['x-cortex']}'s spelling)")
    return entry


def _holders(value, parts):
    """The mappings at a dotted path (through lists), which may hold the last key."""
    if isinstance(value, list):
        for item in value:
            yield from _holders(item, parts)
        return
    if not isinstance(value, dict):
        return
    if not parts:
        yield value
        return
    yield from _holders(value.get(parts[0]), parts[1:])


def _ensure(entry, parts, where):
    holder = entry
    for part in parts:
        if holder.get(part) is None:
            holder[part] = {}
        if not isinstance(holder[part], dict):
            raise SpecError(f"{where}: expected a mapping at {part}")
        holder = holder[part]
    return holder


def _move(source, key, destination, new_key, where, new_name):
    if key not in source:
        return
    value = source.pop(key)
    if value is None:
        return
    existing = destination.get(new_key, _MISSING)
    if existing not in (_MISSING, None) and existing != value:
        raise SpecError(f"{where}: the older spelling of {new_name}, which is also given ({existing!r}); keep one")
    destination[new_key] = value
