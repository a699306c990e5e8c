"""The code blocks of README.md and docs/*.md, and the shell script that runs a page's blocks.

Convention: every fenced block tagged bash, sh, console or python is executed (tests/test_docs_examples.py)
unless the line right before its fence is `<!-- not-run: <reason> -->`. A page's blocks run in order in
one shell, in a folder holding a copy of examples/, as a reader runs them from the repository root:

* a bash block that is one `tritonize serve ...` command is started in the background, as the reader
  starts it in a second shell, and the next block runs once it is ready (stopped at the end of the page);
* `curl` fails on an HTTP error status (a wrong command cannot pass by printing an error body);
* python blocks run in the interpreter that runs the tests, which is also first on PATH;
* console blocks: the lines starting with `$ ` are the commands.
"""

import glob
import os
import re
import shlex
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_LANGS = {"bash", "sh", "console", "python"}
NOT_RUN = re.compile(r"^<!--\s*not-run:(.*?)-->\s*$")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")


def doc_files():
    return [
        os.path.join(ROOT, "README.md"),
        *sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)),
    ]


@dataclass
class Block:
    path: str
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def where(self):
        return f"{os.path.relpath(self.path, ROOT)}:{self.line}"

    @property
    def runs(self):
        return self.lang in RUN_LANGS and self.not_run is None


def blocks(path, text=None):
    """Every fenced block of a Markdown file, with the not-run marker right before it (if any)."""
    lines = (open(path, encoding="utf-8").read() if text is None else text).splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i].strip())
        if not match:
            i += 1
            continue
        fence, lang, start = match.group(1), match.group(2).lower(), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        marker = NOT_RUN.match(lines[start - 1].strip()) if start > 0 else None
        found.append(Block(path, start + 1, lang, "\n".join(body), marker.group(1).strip() if marker else None))
        i += 1
    return found


def stray_markers(path, text=None):
    """Line numbers of not-run markers that are not right before a fence (they mark nothing)."""
    lines = (open(path, encoding="utf-8").read() if text is None else text).splitlines()
    return [
        n + 1
        for n, line in enumerate(lines)
        if NOT_RUN.match(line.strip()) and not (n + 1 < len(lines) and FENCE.match(lines[n + 1].strip()))
    ]


def _serve_command(code):
    """The `tritonize serve ...` command a block consists of, or None."""
    commands = [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(commands) == 1 and commands[0].lstrip().startswith("tritonize serve"):
        return commands[0].split(" #", 1)[0].strip()
    return None


def _ready_urls(command):
    args = shlex.split(command)

    def value(flag, default):
        return args[args.index(flag) + 1] if flag in args else default

    host = value("--host", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    urls = [f"http://{host}:{value('--http-port', '8000')}/v2/health/ready"]
    if "--no-cortex" not in args and "--docker" not in args:
        urls.append(f"http://{host}:{value('--cortex-port', '8080')}/_tritonize/ready")
    return urls


PREAMBLE = r"""set -euo pipefail
# An HTTP error status fails the block, as a reader would notice the error.
curl() { command curl --fail-with-body --silent --show-error "$@"; }
doc_server=""
doc_stop() {
    local rc=$?
    if [ -n "$doc_server" ] && kill -0 "$doc_server" 2>/dev/null; then
        kill -TERM "$doc_server"
        for _ in $(seq 600); do kill -0 "$doc_server" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$doc_server" 2>/dev/null || true
    fi
    if [ "$rc" != 0 ] && [ -f doc-serve.log ]; then echo "### the server's output:"; tail -40 doc-serve.log; fi
    exit "$rc"
}
trap doc_stop EXIT
doc_wait() {
    for _ in $(seq 1800); do
        local all=1
        for url in "$@"; do command curl -sf -o /dev/null "$url" || all=0; done
        [ "$all" = 1 ] && return 0
        kill -0 "$doc_server" 2>/dev/null || { echo "### the server exited"; return 1; }
        sleep 0.1
    done
    echo "### the server was not ready in 180 s"; return 1
}
"""


def page_script(page_blocks, python):
    """A bash script that runs the blocks in order (see the module's docstring)."""
    parts = [PREAMBLE]
    for block in page_blocks:
        if not block.runs:
            continue
        parts.append(f"echo '### {block.where}'")
        if block.lang == "python":
            parts.append(f"{shlex.quote(python)} - <<'DOC_PYTHON_BLOCK'\n{block.code}\nDOC_PYTHON_BLOCK")
            continue
        code = block.code
        if block.lang == "console":
            code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ "))
        serve = _serve_command(code)
        if serve is not None:
            if "--watch" in serve:
                raise ValueError(f"{block.where}: a serve --watch block must be marked not-run")
            parts.append(f"{serve} > doc-serve.log 2>&1 &\ndoc_server=$!")
            parts.append("doc_wait " + " ".join(shlex.quote(url) for url in _ready_urls(serve)))
            continue
        parts.append(code)
    parts.append("echo '### all blocks ran'")
    return "\n".join(parts) + "\n"
