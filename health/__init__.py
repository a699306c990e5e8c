"""Health rules of a running tritonserver, standard library only.

One place for what both the host's `serve` (server/watchdog.py) and a container (the image's
supervisor, and the liveness check of a pod without one) decide: which instance process died
(stubs.py), which API is stuck (stuck.py), how Triton's Prometheus text reads (prometheus.py),
and the liveness verdict built from them (liveness.py). Nothing here imports outside the standard
library or this package: it runs from the zipapp inside any Triton image.
"""
