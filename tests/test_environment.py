"""The stub's process environment (adapter/runtime/environment.py), in fresh Python processes set up
as Triton's stub leaves them: C locale, ASCII streams. tests/test_e2e_predictor_environment.py runs
the same on real Triton."""

import os
import subprocess
import sys
import textwrap

from tritonize.adapter.runtime.environment import python_path_entries


def run_as_stub(code, tmp_path):
    """Run code after putting this process where the stub is (LC_CTYPE "C", ASCII stdout/stderr)."""
    prelude = textwrap.dedent(
        """
        import locale, sys
        locale.setlocale(locale.LC_CTYPE, "C")
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(encoding="ascii", errors="strict")
        from tritonize.adapter.runtime.environment import prepare_stub
        """
    )
    script = tmp_path / "stub_like.py"  # a file, not -c: argv is decoded as ASCII in the C locale
    script.write_text(prelude + textwrap.dedent(code), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-X", "utf8=0", str(script)],
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0"},  # no PEP 538/540 help
    )
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    return result.stdout.decode("utf-8"), result.stderr.decode("utf-8")


def test_text_io_is_utf8_after_prepare_stub(tmp_path):
    (tmp_path / "labels.txt").write_text("café ✓\n", encoding="utf-8")
    out, _ = run_as_stub(
        """
        try:
            open("labels.txt").read()
            raise SystemExit("expected the stub's ASCII default")
        except UnicodeDecodeError:
            pass
        prepare_stub()
        print(open("labels.txt").read().strip(), locale.getpreferredencoding(False))
        """,
        tmp_path,
    )
    assert out == "café ✓ UTF-8\n"


def test_environment_values_are_utf8(tmp_path):
    out, _ = run_as_stub(
        """
        import os, subprocess
        prepare_stub()
        os.environ["TRITONIZE_TEST_GREETING"] = "grüße ✓"
        child = subprocess.run(["printenv", "TRITONIZE_TEST_GREETING"], capture_output=True).stdout
        print(os.environ["TRITONIZE_TEST_GREETING"], child.decode("utf-8").strip())
        """,
        tmp_path,
    )
    assert out == "grüße ✓ grüße ✓\n"


def test_tritonize_lines_appear_once_when_the_predictor_configures_logging(tmp_path):
    _, err = run_as_stub(
        """
        import logging
        log = prepare_stub()
        logging.info("the predictor logs")  # basicConfig: a root handler on stderr
        logging.getLogger().setLevel(logging.INFO)
        log.info("api: predictor ready ✓")
        """,
        tmp_path,
    )
    assert err.count("api: predictor ready ✓") == 1, err


def test_pythonpath_entries_are_absolute_and_relative_to_the_project(tmp_path):
    environ = {"PYTHONPATH": os.pathsep.join(["libs", "", "/opt/shared", "../common/./x"])}
    project = str(tmp_path / "project")
    assert python_path_entries(project, environ) == [
        os.path.join(project, "libs"),
        "/opt/shared",
        os.path.join(str(tmp_path), "common", "x"),
    ]
    assert python_path_entries(project, {}) == []
