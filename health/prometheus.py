"""Prometheus text exposition format -> samples: the one parser (status, watchdog, liveness)."""

import re

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(value):
    return re.sub(r"\\[\\\"n]", lambda m: _ESCAPES[m.group(0)], value) if "\\" in value else value


def parse_metrics(text):
    """Prometheus text format -> [(name, {label: value}, float)]; comments and malformed lines skipped."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            labels = {key: _unescape(value) for key, value in _LABEL.findall(match.group("labels") or "")}
            try:
                samples.append((match.group("name"), labels, float(match.group("value"))))
            except ValueError:
                continue
    return samples
