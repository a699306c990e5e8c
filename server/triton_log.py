"""Telling Triton's own output from the predictors'."""

import re

# Triton's own log lines ("I1125 17:03:36.998938 21598 server.cc:305] ...") and its startup
# tables ("+------+", "| Model | ..."); anything else is the predictors' own output.
_TRITON_LINE = re.compile(r"^([IWEV]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\]|[+|]|\s*$|Signal \(\d+\) received)")


def is_triton_log_line(line):
    return bool(_TRITON_LINE.match(line))
