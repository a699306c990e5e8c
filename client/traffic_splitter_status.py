"""`tritonize status`: requests per target of each TrafficSplitter, read from the Cortex endpoint.

The endpoint counts its routing decisions (cortex_endpoint/traffic_splitter.py) since it started,
for all its worker processes; behind a load balancer each read is one replica's counts.
"""

import json
import urllib.error
import urllib.request

from tritonize.adapter.runtime.constants import DEFAULT_CORTEX_PORT, TRAFFIC_SPLITTERS_KEY, TRAFFIC_SPLITTERS_PATH
from tritonize.client.status import default_metrics_url
from tritonize.host import local_http


def default_cortex_url(url):
    """The Cortex endpoint beside the Triton at `url` (same host, the default Cortex port)."""
    return default_metrics_url(url, DEFAULT_CORTEX_PORT)


def collect_splitters(cortex_url, timeout=5):
    """[splitter stats] from the endpoint; [] when it is not running or serves no TrafficSplitter."""
    base = cortex_url if "://" in cortex_url else f"http://{cortex_url}"
    try:
        with local_http.urlopen(urllib.request.Request(base + TRAFFIC_SPLITTERS_PATH), timeout=timeout) as response:
            return json.loads(response.read()).get(TRAFFIC_SPLITTERS_KEY, [])
    except (OSError, ValueError, urllib.error.HTTPError):
        return []


def format_splitters(splitters):
    """A table: one line per target (requests, share of the splitter's requests) and per shadow."""
    if not splitters:
        return ""
    lines = [f"{'TRAFFIC SPLITTER':<24} {'API':<24} {'WEIGHT':>6} {'REQUESTS':>9} {'SHARE':>6}"]
    for splitter in splitters:
        total = sum(t["requests"] for t in splitter["targets"])
        for target in splitter["targets"]:
            share = f"{100.0 * target['requests'] / total:.1f}%" if total else "-"
            lines.append(
                f"{splitter['name']:<24} {target['name']:<24} {target['weight']:>6} {target['requests']:>9} {share:>6}"
            )
        shadow = splitter.get("shadow")
        if shadow:
            lines.append(
                f"{splitter['name']:<24} {shadow['name'] + ' (shadow)':<24} {'-':>6} {shadow['sent']:>9} "
                f"answered {shadow['answered']}, failed {shadow['failed']}, dropped {shadow['dropped']}"
            )
    return "\n".join(lines)
