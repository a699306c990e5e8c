"""The one interface every way of running tritonserver implements (local binary, Docker)."""

from __future__ import annotations

import abc
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from tritonize.errors import ServeError


class Launcher(abc.ABC):
    """start() -> wait_ready() -> (serving) -> stop(), with kill() for a second Ctrl-C.

    Subclasses set self.process (a Popen whose stdout is Triton's output), self.log_lines,
    self.on_output; the output reader and readiness checks below are shared.
    """

    noise: tuple[str, ...] = ()  # substrings of log lines not passed to on_output
    process: subprocess.Popen | None = None
    detached: bool = False  # still running after serve returns (docker --detach)

    def __init__(self) -> None:
        self.log_lines: list[str] = []
        self.on_output: Callable[[str], None] | None = None
        self.failed_apis: dict[str, str] = {}  # API -> why it did not load (the others still serve)
        self.cpu_overrides: dict[str, list[int] | None] = {}  # API -> GPUs it was built for (serve --cpu)
        self._reader: threading.Thread | None = None

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

    def load_failures(self) -> dict[str, str]:
        """{API: the predictor's own traceback} for APIs whose predictor failed to load."""
        return {}

    def logs(self) -> list[str]:
        """Triton's output so far."""
        return list(self.log_lines)

    def wait(self) -> int:
        """Block until Triton exits on its own; its exit code."""
        assert self.process is not None, "start() first"
        return self.process.wait()

    def is_ready(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(self.http_url + "/v2/health/ready", timeout=timeout) as response:
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
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.log_lines.append(line)
            if self.on_output and not any(n in line for n in self.noise):
                self.on_output(line)
