"""Cortex's include/exclude globs: github.com/gobwas/glob compiled with '/' as the separator.

Matched against a file's whole path as listed (s3://bucket/key, /local/path or file:///local/path):
`*` any run of characters without '/', `**` any run with '/', `?` one character but '/', `[abc]`,
`[a-z]`, `[!abc]`, `{a,b}` alternatives, `\\` escapes the next character.
"""

import re


class GlobError(ValueError):
    pass


def compile_glob(pattern):
    """-> compiled regular expression matching a whole path, or GlobError."""
    regex, end = _sequence(pattern, 0, top=True)
    if end != len(pattern):
        raise GlobError(f"unexpected {pattern[end]!r} at position {end}")
    return re.compile(regex + r"\Z", re.DOTALL)


def matches(patterns, path):
    return any(pattern.match(path) for pattern in patterns)


def _sequence(pattern, i, top):
    out = []
    while i < len(pattern):
        char = pattern[i]
        if not top and char in ",}":
            break
        if char == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
            else:
                out.append("[^/]*")
                i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern.startswith(("[!", "[^"), i) else i + 1)
            if end < 0:
                raise GlobError(f"unclosed '[' at position {i}")
            body = pattern[i + 1 : end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            if not body:
                raise GlobError(f"empty character class at position {i}")
            out.append(("[^/" if negate else "[") + body.replace("\\", "\\\\").replace("]", "\\]") + "]")
            i = end + 1
        elif char == "{":
            alternatives = []
            i += 1
            while True:
                regex, i = _sequence(pattern, i, top=False)
                alternatives.append(regex)
                if i >= len(pattern):
                    raise GlobError("unclosed '{'")
                if pattern[i] == "}":
                    i += 1
                    break
                i += 1  # ','
            out.append("(?:" + "|".join(alternatives) + ")")
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise GlobError("'\\' at the end of the pattern")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out), i
