"""What the local and Docker launchers share: reading Triton's output, and its readiness."""

import re
import threading
import urllib.error
import urllib.request

from tritonize.errors import ServeError


# Triton's own log lines ("I1125 17:03:36.998938 21598 server.cc:305] ...") and its startup
# tables ("+------+", "| Model | ..."); anything else is the predictors' own output.
_TRITON_LINE = re.compile(r"^([IWEV]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\]|[+|]|\s*$|Signal \(\d+\) received)")


def is_triton_log_line(line):
    return bool(_TRITON_LINE.match(line))


class TritonProcess:
    """Mixin: needs self.process (a Popen with stdout piped), self.log_lines, self.on_output, self.http_url,
    and self.failure_report()."""

    noise = ()  # substrings of log lines not passed to on_output

    def _start_reader(self):
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _raise_if_exited(self):
        """While waiting for readiness: if Triton already exited, raise with what it said."""
        if self.process.poll() is not None:
            self._reader.join(timeout=5)  # the last lines carry the reason
            raise ServeError(self.failure_report())

    def _read_output(self):
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.log_lines.append(line)
            if self.on_output and not any(n in line for n in self.noise):
                self.on_output(line)

    def is_ready(self, timeout=2.0):
        try:
            with urllib.request.urlopen(self.http_url + "/v2/health/ready", timeout=timeout) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False
