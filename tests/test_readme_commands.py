"""Every `tritonize ...` command line in the README, docs/ and the examples' READMEs parses with the real CLI.

Options and subcommands that the CLI no longer has fail here, so the docs cannot drift from it.
Paths need not exist (they name the reader's files), and upper-case placeholders (TAG, SECONDS)
stand for values; everything else must be accepted as written.
"""

import glob
import os
import re
import shlex

import click
import pytest

from tritonize.cli.main import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [
    os.path.join(ROOT, "README.md"),
    *sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)),
    *sorted(glob.glob(os.path.join(ROOT, "examples", "*", "README.md"))),
]
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$|^<[^>]+>$")
SHELL_BREAKS = {"&&", "||", "|", ";", ">", "2>&1", "&"}


def code_lines(path):
    """Lines of the fenced code blocks, continuation backslashes joined, comments dropped."""
    lines, block, pending = [], False, ""
    for number, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.lstrip().startswith("```"):
            block = not block
            continue
        if not block:
            continue
        text = pending + line.rstrip("\n")
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        lines.append((number, text))
    return lines


def tritonize_commands():
    found = []
    for path in DOCS:
        for number, text in code_lines(path):
            try:
                tokens = shlex.split(text.replace("[", " ").replace("]", " "), comments=True)
            except ValueError:
                continue
            for i, token in enumerate(tokens):
                if token == "tritonize" and (i == 0 or tokens[i - 1] in SHELL_BREAKS or tokens[i - 1] == "$"):
                    args = []
                    for arg in tokens[i + 1 :]:
                        if arg in SHELL_BREAKS:
                            break
                        # A synopsis' alternatives (hpa|keda|none): the first stands for all.
                        args.append(arg.split("|")[0] if "|" in arg and not arg.startswith("|") else arg)
                    if args:
                        found.append(pytest.param(args, id=f"{os.path.relpath(path, ROOT)}:{number}"))
    return found


def parse(args):
    """Parse as `tritonize ARGS` would, down to the leaf command, without running anything."""
    command, name, parent = cli, "tritonize", None
    while True:
        ctx = command.make_context(name, list(args), parent=parent, resilient_parsing=False)
        if not isinstance(command, click.Group):
            return ctx
        # Click 8.2+ keeps the subcommand in _protected_args (protected_args is deprecated).
        rest = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args]
        if not rest:
            return ctx
        name, command, args = command.resolve_command(ctx, rest)
        parent = ctx


COMMANDS = tritonize_commands()


def test_the_docs_have_commands():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("args", COMMANDS)
def test_readme_command_parses(args):
    try:
        parse(args)
    except click.BadParameter as exc:
        value = str(exc)
        if "does not exist" in value:  # a file of the reader's
            return
        if any(PLACEHOLDER.match(a) and repr(a) in value or f"'{a}'" in value for a in args if PLACEHOLDER.match(a)):
            return
        raise
