"""The project's `.env`, read at build into the API's environment.

Cortex's bootloader ran `set -a; source .env; set +a` after the API's environment was set, for
the dependency installs and every serving process: `.env`'s values win over predictor.env.
tritonize reads the file once, at build, with python-dotenv's parser (the shell syntax people put
there: `export`, quotes, comments, `${VAR}` and `${VAR:-default}`), and stores the result as the
API's environment; the file itself is never copied (adapter/project_files.py: hidden files).
"""

import io
import os
import re

from dotenv.parser import parse_stream
from dotenv.variables import parse_variables

from tritonize.adapter.project_files import read_project_text
from tritonize.errors import BuildError

DOTENV_FILE = ".env"
# What a shell accepts as a variable name (and so what `source` could have exported).
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SINGLE_QUOTED = re.compile(r"^\s*(?:export\s+)?[^=]*=\s*'")


def read_dotenv(project_dir, base_env=None, warnings=None):
    """{name: value} from <project_dir>/.env ({} without one); `${VAR}` resolves against base_env
    (predictor.env) and the lines above, as `source` would. Never reads this machine's environment:
    the build machine's variables must not leak into a repository or image."""
    path = os.path.join(project_dir, DOTENV_FILE)
    if not os.path.lexists(path):
        return {}
    text = read_project_text(path, "the project's .env")
    known = dict(base_env or {})
    values = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            raise BuildError(f"{path}:{line}: cannot parse {binding.original.string.strip()[:60]!r} as NAME=value")
        if binding.key is None:
            continue  # blank line or comment
        if not ENV_NAME_RE.match(binding.key):
            raise BuildError(f"{path}:{line}: {binding.key!r} is not a variable name")
        if binding.value is None:
            continue  # a bare NAME: `source` would run it as a command, it sets nothing
        if _SINGLE_QUOTED.match(binding.original.string):
            value = binding.value  # single quotes: no expansion, as in the shell
        else:
            value = ""
            for atom in parse_variables(binding.value):
                name = getattr(atom, "name", None)
                if name is not None and name not in known and atom.default is None and warnings is not None:
                    warnings.append(
                        f"{path}:{line}: ${{{name}}} is defined neither above in .env nor in predictor.env: "
                        "empty (build never reads this machine's environment)"
                    )
                value += atom.resolve(known)
        known[binding.key] = values[binding.key] = value
    return values


def api_environment(api, warnings=None):
    """The API's environment as Cortex's processes saw it: predictor.env, then .env over it."""
    found = []
    values = read_dotenv(api.project_dir, api.env, found)
    if warnings is not None:
        warnings.extend(f"{api.name}: {text}" for text in found)
    return {**api.env, **values}
