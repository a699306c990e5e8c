"""docs/migrating-from-cortex.md lists every field and kind the schema knows, with the schema's status."""

import os
import re

from tritonize.adapter.spec_schema import KINDS, BatchApi, RealtimeApi, TrafficSplitter, iter_fields

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "migrating-from-cortex.md")
ROW = re.compile(r"^\| `([^`]+)` \| [^|]+ \| (used|mapped|ignored|refused) \|")


def _sections():
    """'## Title' -> {first-column name: status} of the table rows under it."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    sections = {}
    for chunk in text.split("\n## ")[1:]:
        title, _, body = chunk.partition("\n")
        rows = [ROW.match(line) for line in body.splitlines()]
        sections[title.strip()] = {m.group(1): m.group(2) for m in rows if m}
    return sections


def test_every_realtime_api_field_is_in_the_table_with_its_status():
    table = _sections()["RealtimeAPI fields"]
    expected = {path: status for path, status, _ in iter_fields(RealtimeApi)}
    assert table == expected


def test_every_batch_api_field_is_in_the_table_with_its_status_and_why():
    table = _sections()["BatchAPI fields"]
    assert table == {path: status for path, status, _ in iter_fields(BatchApi)}
    lines = _section_lines("BatchAPI fields")
    for path, status, extra in iter_fields(BatchApi):
        if status in ("ignored", "refused"):
            (row,) = [line for line in lines if line.startswith(f"| `{path}` |")]
            assert extra["x-tritonize-why"].replace("|", "\\|") in row, (path, row)


def _text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def test_every_traffic_splitter_field_is_in_the_table_with_its_status():
    table = _sections()["TrafficSplitter fields"]
    assert table == {path: status for path, status, _ in iter_fields(TrafficSplitter)}


def test_every_kind_is_in_the_table_with_its_status():
    assert _sections()["API kinds"] == {kind: status for kind, (status, _, _) in KINDS.items()}


def _section_lines(title):
    return ("\n## " + title + _text().split("\n## " + title)[1].split("\n## ")[0]).splitlines()


def test_mapped_fields_name_their_new_spelling():
    lines = _section_lines("RealtimeAPI fields")
    for path, status, extra in iter_fields(RealtimeApi):
        if status != "mapped":
            continue
        target = extra["x-tritonize-to"]
        target = path.rpartition(".")[0] + target if target.startswith(".") else target
        (row,) = [line for line in lines if line.startswith(f"| `{path}` |")]
        assert f"`{target}`" in row, row


def test_ignored_and_refused_fields_say_why_as_the_build_warning_does():
    lines = _section_lines("RealtimeAPI fields")
    for path, status, extra in iter_fields(RealtimeApi):
        if status in ("ignored", "refused"):
            (row,) = [line for line in lines if line.startswith(f"| `{path}` |")]
            assert extra["x-tritonize-why"].replace("|", "\\|") in row, (path, row)
