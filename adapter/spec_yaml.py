"""Reading cortex.yaml: YAML's safe subset, bounded in what it may expand to.

YAML aliases let a few hundred bytes stand for a tree of billions of nodes (the "billion laughs"):
PyYAML shares the aliased objects, so loading is cheap, but everything that walks or serializes the
spec (the schema, json.dump of the API's settings) pays the expanded size. The expanded size is
counted on the composed node graph, before anything is constructed, and a spec above the bound is
refused. A recursive alias (`&a [*a]`) has no finite expansion and is refused too.
"""

import yaml

from tritonize.errors import SpecError

# Nodes (mappings, lists, scalars) the spec may hold once every alias is expanded. A large `config`
# (say a 50,000-entry label list) is far below it; a 580-byte alias bomb is ~10^8 above it.
MAX_EXPANDED_NODES = 1_000_000


def _expanded_size(root, where):
    """Nodes in the tree `root` stands for, each alias counted as often as it is used."""
    sizes = {}  # id(node) -> expanded size, computed children first (iteratively: deep specs are fine)
    on_path = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > MAX_EXPANDED_NODES:
                raise SpecError(
                    f"{where}: the spec expands to more than {MAX_EXPANDED_NODES:,} values "
                    "(YAML aliases repeat what they name); write the values out or make them smaller"
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise SpecError(f"{where}: a YAML alias refers to itself (a recursive structure cannot be a spec)")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise SpecError(f"{where}: a YAML alias refers to itself (a recursive structure cannot be a spec)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node):
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return ()


def load_yaml(text, where):
    """YAML text -> Python data (safe types only), refusing documents that expand beyond the bound."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
