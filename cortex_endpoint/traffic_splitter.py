"""POST /<splitter>: Cortex's TrafficSplitter on the Cortex endpoint.

Each request goes to one target API, drawn by weight, and is answered exactly as POST /<target>
would be. A shadow API gets a copy of every POST, fire-and-forget: its answer is discarded and it
never delays or fails the client's (at most MAX_SHADOW_IN_FLIGHT copies are pending per process;
beyond that copies are dropped and counted). The splitters come from the built repository's marker
file (adapter/traffic_splitter.py writes them). Counters live in shared memory allocated before the
endpoint forks its workers, so GET /_tritonize/traffic-splitters reports the whole process group.
"""

import asyncio
import contextlib
import json
import multiprocessing
import random

from tritonize.adapter.runtime.constants import TRAFFIC_SPLITTERS_KEY, TRAFFIC_SPLITTERS_PATH
from tritonize.errors import ServeError

STATS_PATH = TRAFFIC_SPLITTERS_PATH
MAX_SHADOW_IN_FLIGHT = 256
# Per splitter: one counter per target, then the shadow's copies: sent, answered (2xx), failed, dropped.
SHADOW_COUNTERS = ("sent", "answered", "failed", "dropped")


class Counters:
    """uint64 counters shared by the forked workers (a lock: increments from two processes never get lost)."""

    def __init__(self, size):
        try:
            self.values = multiprocessing.get_context("fork").Array("Q", max(size, 1))
        except (OSError, ValueError):  # no shared memory here (a locked-down sandbox): this process's counts only
            self.values = _LocalArray(max(size, 1))

    def add(self, index, amount=1):
        with self.values.get_lock():
            self.values[index] += amount

    def get(self, index):
        return self.values[index]


class _LocalArray(list):
    def __init__(self, size):
        super().__init__([0] * size)

    def get_lock(self):
        return contextlib.nullcontext()


class _ShadowConnection:
    """Where the shadow's answer goes: nowhere; only its status is counted (as server.HttpConnection's API)."""

    closed = False

    def __init__(self, splitter, loop):
        self.splitter = splitter
        self.lost = loop.create_future()  # streams cancel when this is done: never
        self.counted = False

    def _finish(self, status):
        if not self.counted:
            self.counted = True
            self.splitter.shadow_done(200 <= status < 300)

    def respond(self, status, content_type, body, extra=b"", head=False):
        self._finish(status)

    def start_chunked(self, status, content_type):
        self._finish(status)

    def write_chunk(self, data):
        pass

    def end_chunked(self):
        pass

    def abort(self):
        if not self.counted:
            self._finish(500)


class SplitRoute:
    """A route-table entry (routes.py) that resolves each request to one of its targets' Routes."""

    # What the endpoint and `docker build` ask of a route before resolving it.
    streaming = False
    typed = False

    def __init__(self, name, targets, shadow, counters, base):
        self.name = name
        self.targets = targets  # [(Route, weight)], weights summing to 100
        self.shadow = shadow  # a Route, or None
        self.counters = counters
        self.base = base  # this splitter's first counter
        self.in_flight = 0
        self._cumulative = []
        total = 0
        for _, weight in targets:
            total += weight
            self._cumulative.append(total)
        self.total = total

    def pick(self):
        draw = random.random() * self.total
        for index, bound in enumerate(self._cumulative):
            if draw < bound:
                return index
        return len(self.targets) - 1

    def resolve(self, front, conn, request):
        """-> the target's Route (the endpoint answers it as POST /<target>); a POST's copy goes to the shadow."""
        if request.method != b"POST":
            return self.targets[0][0]  # GET's summary, OPTIONS, 405: the same for every API
        index = self.pick()
        self.counters.add(self.base + index)
        if self.shadow is not None:
            self._send_shadow(front, request)
        return self.targets[index][0]

    def _shadow_index(self, counter):
        return self.base + len(self.targets) + SHADOW_COUNTERS.index(counter)

    def _send_shadow(self, front, request):
        self.counters.add(self._shadow_index("sent"))
        if self.in_flight >= MAX_SHADOW_IN_FLIGHT:
            self.counters.add(self._shadow_index("dropped"))
            return
        self.in_flight += 1
        shadow_conn = _ShadowConnection(self, asyncio.get_running_loop())
        try:
            # The endpoint's own forwarding (app.py), as for POST /<shadow>, answered to a connection that drops it.
            pending = front._predict(self.shadow, shadow_conn, request)
        except Exception:  # whatever happens to the copy, the client's request goes on
            shadow_conn._finish(500)
            return
        if pending is None:
            shadow_conn._finish(500)  # answered at once (it counted itself if it responded)
            return
        asyncio.ensure_future(pending).add_done_callback(lambda done: _swallow(done, shadow_conn))

    def shadow_done(self, ok):
        self.in_flight -= 1
        self.counters.add(self._shadow_index("answered" if ok else "failed"))

    def stats(self):
        return {
            "name": self.name,
            "targets": [
                {"name": route.api, "weight": weight, "requests": self.counters.get(self.base + i)}
                for i, (route, weight) in enumerate(self.targets)
            ],
            "shadow": None
            if self.shadow is None
            else {"name": self.shadow.api, **{c: self.counters.get(self._shadow_index(c)) for c in SHADOW_COUNTERS}},
        }


def _swallow(done, shadow_conn):
    if not done.cancelled():
        done.exception()  # retrieved: a failed copy is counted, never logged as unhandled
    shadow_conn._finish(500)  # no-op when it answered


class SplitterStats:
    """GET /_tritonize/traffic-splitters: requests per target, as `tritonize status` shows them."""

    streaming = False
    typed = False

    def __init__(self, splitters):
        self.splitters = splitters

    def resolve(self, front, conn, request):
        body = json.dumps({TRAFFIC_SPLITTERS_KEY: [s.stats() for s in self.splitters]}).encode()
        conn.respond(200, b"application/json", body, head=request.method == b"HEAD")
        return None


def splitter_routes(splitters, routes):
    """{path: SplitRoute} for the repository's TrafficSplitters (SplitterSettings from its marker), and the
    stats path, given the APIs' routes."""
    if not splitters:
        return {}
    size = sum(len(splitter.apis) + len(SHADOW_COUNTERS) for splitter in splitters)
    counters, base, result, routed = Counters(size), 0, {}, []
    by_api = {route.api: route for route in routes.values()}
    for settings in splitters:
        name = settings.name
        missing = [api.name for api in settings.apis if api.name not in by_api]
        if missing:
            raise ServeError(f"TrafficSplitter {name!r} routes to {', '.join(missing)}, not in this repository")
        targets = [(by_api[api.name], api.weight) for api in settings.targets]
        shadow = by_api[settings.shadow] if settings.shadow else None
        splitter = SplitRoute(name, targets, shadow, counters, base)
        base += len(settings.apis) + len(SHADOW_COUNTERS)
        routed.append(splitter)
        for path in settings.paths:
            if path in routes or path in result:
                raise ServeError(f"TrafficSplitter {name!r} and another API both answer on {path}")
            result[path] = splitter
    result[STATS_PATH] = SplitterStats(routed)
    return result
