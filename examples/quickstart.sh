#!/usr/bin/env bash
# Build the echo example, serve it with real Triton, and call it over HTTP, gRPC and curl.
# Usage: examples/quickstart.sh   (with tritonize installed, e.g. in .venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tritonize="${TRITONIZE:-tritonize}"
command -v "$tritonize" >/dev/null || tritonize="$here/../.venv/bin/tritonize"
HTTP_PORT="${HTTP_PORT:-8000}"; GRPC_PORT="${GRPC_PORT:-8001}"; METRICS_PORT="${METRICS_PORT:-8002}"
work="$(mktemp -d)"
trap 'kill -TERM "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; rm -rf "$work"' EXIT

echo "== tritonize build examples/echo/predictor.py"
"$tritonize" build "$here/echo/predictor.py" -o "$work/model_repository" --config greeting=hi

echo "== tritonize serve (HTTP $HTTP_PORT, gRPC $GRPC_PORT)"
"$tritonize" serve "$work/model_repository" --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" \
  --metrics-port "$METRICS_PORT" &
serve_pid=$!
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || { echo "serve exited" >&2; exit 1; }
  sleep 0.1
done

echo "== tritonize predict (HTTP)"
"$tritonize" predict echo --data '{"text": "hello over HTTP"}' --param lang=en --header X-Tenant=acme \
  --url "127.0.0.1:$HTTP_PORT"
echo "== tritonize predict (gRPC)"
"$tritonize" predict echo --data '{"text": "hello over gRPC"}' --protocol grpc --url "127.0.0.1:$GRPC_PORT"
echo "== curl"
curl -s "http://127.0.0.1:$HTTP_PORT/v2/models/echo/infer" -H 'X-Tenant: acme' -d '{
  "parameters": {"lang": "en"},
  "inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ["{\"text\": \"hello from curl\"}"]}]
}'
echo
echo "== done: stopping the server"
