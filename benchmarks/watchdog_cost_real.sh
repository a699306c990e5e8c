#!/usr/bin/env bash
# The watchdog's poll cost against a real tritonserver (~100 threads, 2 stubs), before/after:
#   benchmarks/watchdog_cost_real.sh            (from the repository root, with .venv built)
# Starts `tritonize serve` on free 127.0.0.1 ports, runs benchmarks/watchdog_cost.py on its
# tritonserver, stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
W=$(mktemp -d /tmp/watchdog-cost.XXXX)
trap 'rm -rf "$W"' EXIT
cp -r tests/fixtures/hang "$W/project"
sed -i 's/request_timeout: 2s/instances: 2/' "$W/project/cortex.yaml"
"$PY" -m tritonize.cli build "$W/project/cortex.yaml" -o "$W/repo" >/dev/null
set -- $("$PY" -c "import sys; sys.path.insert(0, 'tests'); from conftest import free_ports; print(*free_ports(4))")
setsid "$PY" -m tritonize.cli serve "$W/repo" --http-port "$1" --grpc-port "$2" --metrics-port "$3" \
    --cortex-port "$4" >"$W/serve.log" 2>&1 &
SERVE=$!
for _ in $(seq 240); do curl -sf "http://127.0.0.1:$1/v2/health/ready" >/dev/null && break; sleep 0.5; done
TRITON=$(pgrep -f "tritonserver.*--http-port=$1|tritonserver.*--http-port $1" | head -1)
echo "tritonserver pid $TRITON; threads with children:"
for t in /proc/"$TRITON"/task/*; do c=$(cat "$t/children" 2>/dev/null || true); [ -n "$c" ] && echo "  $t: $c"; done
"$PY" benchmarks/watchdog_cost.py 200 "$TRITON" || true
kill -TERM "$SERVE"; wait "$SERVE" || true
