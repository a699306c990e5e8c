#!/usr/bin/env bash
# Train Cortex's iris classifier, build it, serve it with real Triton, and call it over HTTP, gRPC and curl,
# and as an unchanged Cortex client does (POST /iris-classifier on the Cortex endpoint).
# Usage: examples/quickstart.sh   (with tritonize[server] and scikit-learn installed, e.g. in .venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tritonize="${TRITONIZE:-tritonize}"
command -v "$tritonize" >/dev/null || tritonize="$here/../.venv/bin/tritonize"
# The Python that runs tritonize (and so the predictor) also trains the model: same scikit-learn.
python="$(dirname "$(command -v "$tritonize")")/python"
[ -x "$python" ] || python=python3
HTTP_PORT="${HTTP_PORT:-8000}"; GRPC_PORT="${GRPC_PORT:-8001}"; METRICS_PORT="${METRICS_PORT:-8002}"
CORTEX_PORT="${CORTEX_PORT:-8080}"
work="$(mktemp -d)"
trap 'kill -TERM "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; rm -rf "$work"' EXIT

echo "== python examples/iris/train.py"
"$python" "$here/iris/train.py"

echo "== tritonize build examples/iris/cortex.yaml"
"$tritonize" build "$here/iris/cortex.yaml" -o "$work/model_repository"

echo "== tritonize serve (HTTP $HTTP_PORT, gRPC $GRPC_PORT)"
"$tritonize" serve "$work/model_repository" --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" \
  --metrics-port "$METRICS_PORT" --cortex-port "$CORTEX_PORT" &
serve_pid=$!
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$CORTEX_PORT/_tritonize/ready" >/dev/null && break  # Triton, then the endpoint
  kill -0 "$serve_pid" 2>/dev/null || { echo "serve exited" >&2; exit 1; }
  sleep 0.1
done

echo "== tritonize predict (HTTP): expect setosa"
"$tritonize" predict iris-classifier --data @"$here/iris/sample.json" --url "127.0.0.1:$HTTP_PORT"
echo "== tritonize predict (gRPC): expect virginica"
"$tritonize" predict iris-classifier --protocol grpc --url "127.0.0.1:$GRPC_PORT" \
  --data '{"sepal_length": 6.9, "sepal_width": 3.1, "petal_length": 5.4, "petal_width": 2.1}'
echo "== curl: expect versicolor"
curl -s "http://127.0.0.1:$HTTP_PORT/v2/models/iris-classifier/infer" -d '{
  "inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES",
              "data": ["{\"sepal_length\": 5.9, \"sepal_width\": 2.8, \"petal_length\": 4.3, \"petal_width\": 1.3}"]}]
}'
echo
echo "== curl as a Cortex client (POST /iris-classifier on port $CORTEX_PORT): expect setosa"
curl -s -X POST "http://127.0.0.1:$CORTEX_PORT/iris-classifier" -H 'Content-Type: application/json' \
  -d @"$here/iris/sample.json"
echo
echo "== done: stopping the server"
