#!/usr/bin/env bash
# What Triton 2.51's queue policy (a request timeout for queued requests) costs: the same echo API
# twice, one with dynamic_batching.default_queue_policy {REJECT, TIMEOUT_US}, benchmarked interleaved.
# Usage: benchmarks/queue_policy_cost.sh [TIMEOUT_US=5000000]   (run from the repository root, .venv built)
set -euo pipefail
timeout_us=${1:-5000000}
py="$PWD/.venv/bin/python"
work=$(mktemp -d)
trap 'kill "$serve" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
printf 'class PythonPredictor:\n    def __init__(self, config):\n        pass\n\n    def predict(self, payload):\n        return payload\n' > "$work/p.py"
for api in plain policy; do
    printf -- "- name: %s\n  predictor:\n    type: python\n    path: p.py\n    server_side_batching: {max_batch_size: 8, batch_interval: 1ms}\n" "$api"
done > "$work/cortex.yaml"
"$py" -m tritonize.cli build "$work/cortex.yaml" -o "$work/repo" >/dev/null
"$py" - "$work/repo/policy/config.pbtxt" "$timeout_us" <<'PY'
import sys
path, timeout = sys.argv[1], sys.argv[2]
text = open(path).read()
end = text.index("}", text.index("dynamic_batching {"))
policy = f"  default_queue_policy {{\n    timeout_action: REJECT\n    default_timeout_microseconds: {timeout}\n  }}\n"
open(path, "w").write(text[:end] + policy + text[end:])
PY
port=$("$py" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
TRITONIZE_ADMIN_TOKEN=t "$py" -m tritonize.cli serve "$work/repo" --http-port "$port" --grpc-port $((port + 1)) \
    --metrics-port $((port + 2)) >"$work/serve.log" 2>&1 &
serve=$!
for _ in $(seq 120); do curl -sf "127.0.0.1:$port/v2/health/ready" >/dev/null && break; sleep 0.5; done
uptime
for round in 1 2; do
    for api in plain policy; do
        echo "== $api (round $round)"
        TRITONIZE_ADMIN_TOKEN=t "$py" -m tritonize.cli bench "$api" --data '{"x": 1}' --concurrency 16 --duration 8s \
            --url "127.0.0.1:$port" --engine builtin 2>&1 | tail -1
    done
done
