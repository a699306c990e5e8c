"""The part of tritonize that runs inside Triton (and in `tritonize test`).

Copied into every model repository as the package `tritonize_runtime` next to
`model.py`. It must import only the standard library and numpy, and must use
relative imports only, so it works both as `tritonize.adapter.runtime` and as
the copied `tritonize_runtime`.
"""

# The names everything shares live in constants.py.
