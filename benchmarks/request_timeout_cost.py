"""What model.py's request-timeout bookkeeping costs per execute() (busy_since around the dispatch).

    python benchmarks/request_timeout_cost.py
Interleaved rounds of an execute() without and with the bookkeeping; prints ns per call.
"""

import time
import timeit

_monotonic = time.monotonic


class Plain:
    def execute(self, requests):
        try:
            return requests
        except BaseException:
            return None


class Timed:
    busy_since = None

    def execute(self, requests):
        self.busy_since = _monotonic()
        try:
            return requests
        except BaseException:
            return None
        finally:
            self.busy_since = None


def main(rounds=5, number=1_000_000):
    plain, timed, requests = Plain(), Timed(), [object()]
    best = {"plain": float("inf"), "timed": float("inf")}
    for _ in range(rounds):
        for name, model in (("plain", plain), ("timed", timed)):
            best[name] = min(best[name], timeit.timeit(lambda m=model: m.execute(requests), number=number) / number)
    extra = (best["timed"] - best["plain"]) * 1e9
    print(
        f"execute() without: {best['plain'] * 1e9:.0f} ns, with busy_since: {best['timed'] * 1e9:.0f} ns; "
        f"extra {extra:.0f} ns per call"
    )


if __name__ == "__main__":
    main()
