"""What the local and Docker launchers share: reading Triton's output, and its readiness."""

import urllib.error
import urllib.request


class TritonProcess:
    """Mixin: needs self.process (a Popen with stdout piped), self.log_lines, self.on_output, self.http_url."""

    noise = ()  # substrings of log lines not passed to on_output

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
