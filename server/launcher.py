"""The one interface every way of running tritonserver implements (local binary, Docker)."""

from __future__ import annotations

import abc
import collections
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from tritonize.errors import ServeError
from tritonize.host import local_http

# Triton's output kept for failure reports: enough for a load failure's lines, bounded however
# much the predictors print (every line was kept before: 175 000 prints of 1 KB took 185 MB).
LOG_LINES_KEPT = 2000


def describe_exit(code: int | None) -> str:
    """'exit code 1' / 'killed by signal 11 (SIGSEGV)'; 128+N from `docker run` is signal N too."""
    if code is None:
        return "still running"
    number = -code if code < 0 else code - 128 if 128 < code < 160 else None
    if number is None:
        return f"exit code {code}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = "unknown signal"
    return f"killed by signal {number} ({name})" + (f", exit code {code}" if code > 0 else "")


class Launcher(abc.ABC):
    """start() -> wait_ready() -> (serving) -> stop(), with kill() for a second Ctrl-C.

    Subclasses set self.process (a Popen whose stdout is Triton's output), self.log_lines,
    self.on_output; the output reader and readiness checks below are shared.
    """

    noise: tuple[str, ...] = ()  # substrings of log lines not passed to on_output
    process: subprocess.Popen | None = None
    detached: bool = False  # still running after serve returns (docker --detach)

    def __init__(self) -> None:
        self.log_lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self.lines_total = 0  # lines read since the first start (log_lines keeps the last ones)
        self.on_output: Callable[[str], None] | None = None
        self.failed_apis: dict[str, str] = {}  # API -> why it did not load (the others still serve)
        self.cpu_overrides: dict[str, list[int] | None] = {}  # API -> GPUs it was built for (serve --cpu)
        # The repository Triton reads once started (serve --cpu: a rewritten copy), None if not this machine's:
        # a BatchAPI's job reads the model config to load from there (repository_model.batch_load_config).
        self.served_repository: str | None = None
        self._reader: threading.Thread | None = None
        self._start_mark = 0  # lines_total when this run of Triton started
        self._ready_mark: int | None = None  # lines_total when it became ready (None: not ready yet)

    def detach_message(self) -> str:
        """What serve prints when it returns with the server still running (only launchers that detach)."""
        return ""

    @property
    @abc.abstractmethod
    def http_url(self) -> str:
        """http://host:port of Triton's HTTP endpoint, as this machine reaches it."""

    @abc.abstractmethod
    def start(self) -> Launcher:
        """Start Triton; return at once (wait_ready waits)."""

    @abc.abstractmethod
    def wait_ready(self, timeout: float = 300.0, on_wait: Callable[[float], None] | None = None) -> float:
        """Block until Triton serves; seconds taken. Raises ServeError with failure_report()."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Graceful: in-flight requests finish, then nothing is left behind."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Now: cut a graceful stop short (stop() still cleans up)."""

    @abc.abstractmethod
    def failure_report(self) -> str:
        """Why Triton stopped or an API did not load, for the user."""

    def announce_draining(self) -> None:
        """First step of a graceful stop: say not ready while still answering (serve --drain-notice).
        Launchers whose stop() drains elsewhere (docker stop: the container's own supervisor) do nothing."""
        return None

    def settle_output(self, timeout: float = 2.0) -> None:
        """After Triton exited: let the reader take its last lines (they carry the reason)."""
        if self._reader is not None:
            self._reader.join(timeout=timeout)

    def load_failures(self) -> dict[str, str]:
        """{API: the predictor's own traceback} for APIs whose predictor failed to load."""
        return {}

    def logs(self) -> list[str]:
        """Triton's output so far (the last LOG_LINES_KEPT lines)."""
        return list(self.log_lines)

    def lines_since(self, mark: int, at_most: int = 30) -> list[str]:
        """The lines read after lines_total was `mark` (at most `at_most`, the last ones)."""
        count = min(self.lines_total - mark, at_most, len(self.log_lines))
        return list(self.log_lines)[len(self.log_lines) - count :] if count > 0 else []

    def _mark_started(self) -> None:
        self._start_mark, self._ready_mark = self.lines_total, None

    def _mark_ready(self) -> None:
        self._ready_mark = self.lines_total

    def report_lines(self) -> list[str]:
        """Triton's lines that explain a failure of this run: once it had been ready, what it printed
        since then (the last ones: "Signal (11) received", its stack); while starting, its error lines."""
        if self._ready_mark is not None:
            lines = [line for line in self.lines_since(self._ready_mark, 20) if not any(n in line for n in self.noise)]
            return lines or [
                "(nothing printed since it was ready: a crash inside tritonserver, e.g. on a request it could "
                "not parse, or a kill from outside, e.g. the kernel's OOM killer: see `dmesg`)"
            ]
        lines = self.lines_since(self._start_mark, LOG_LINES_KEPT)
        errors = [line for line in lines if line.startswith("E") or "error" in line.lower()]
        return [line for line in errors if not any(n in line for n in self.noise)][-20:] or lines[-30:]

    def wait(self) -> int:
        """Block until Triton exits on its own; its exit code."""
        assert self.process is not None, "start() first"
        return self.process.wait()

    def is_ready(self, timeout: float = 2.0) -> bool:
        try:
            with local_http.urlopen(self.http_url + "/v2/health/ready", timeout=timeout) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _start_reader(self) -> None:
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _raise_if_exited(self) -> None:
        """While waiting for readiness: if Triton already exited, raise with what it said."""
        assert self.process is not None
        if self.process.poll() is not None:
            if self._reader is not None:
                self._reader.join(timeout=5)  # the last lines carry the reason
            raise ServeError(self.failure_report())

    def _read_output(self) -> None:
        # Never stop reading: a full pipe blocks tritonserver and every stub that prints.
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.log_lines.append(line)
            self.lines_total += 1
            if self.on_output and not any(n in line for n in self.noise):
                try:
                    self.on_output(line)
                except (OSError, ValueError):
                    # Whoever read our output went away (`serve | head`: BrokenPipeError): keep
                    # serving and draining Triton's output, stop echoing it.
                    self.on_output = None
