"""Extract the field tables of KServe's generated SDK models into kserve_v1beta1_models.json.

Source: the `kserve` wheel on PyPI (python -m pip download kserve==0.21.0 --no-deps), whose
kserve/models/v1beta1_*.py are generated from KServe's OpenAPI spec (the CRDs' schema). Each model
class has `openapi_types` (python name -> type) and `attribute_map` (python name -> JSON name);
they are read with `ast`, nothing is imported (the SDK needs protobuf>=6, tritonclient 2.51 <6).

    python tests/data/kserve/extract_models.py path/to/kserve-0.21.0-py3-none-any.whl
"""

import ast
import json
import os
import sys
import zipfile


def tables(source):
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        found = {}
        for item in node.body:
            if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
                if item.targets[0].id in ("openapi_types", "attribute_map"):
                    found[item.targets[0].id] = ast.literal_eval(item.value)
        if len(found) == 2:
            yield node.name, {found["attribute_map"][k]: t for k, t in found["openapi_types"].items()}


def main(wheel):
    models = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            if name.startswith("kserve/models/v1beta1_") and name.endswith(".py"):
                models.update(tables(archive.read(name).decode()))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kserve_v1beta1_models.json")
    with open(out, "w") as f:
        json.dump({"source": f"PyPI {os.path.basename(wheel)}: kserve/models/v1beta1_*.py (openapi_types, attribute_map)",
                   "models": models}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(models)} models -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
