#!/usr/bin/env bash
# Build a local stand-in of the official Triton image (NOT NVIDIA's image): a Debian bookworm rootfs
# plus the nvidia-pytriton wheel's tritonserver 2.51, laid out as in nvcr.io/nvidia/tritonserver
# (/opt/tritonserver/bin/tritonserver, /opt/tritonserver/backends/python/). Offline once the wheels are
# cached; each step is skipped when its result exists.
# Usage: build_standin.sh [IMAGE]   (env: DOCKER_HOST, TRITONIZE_STANDIN_CACHE)
set -euo pipefail
image=${1:-tritonize-standin-triton:2.51}
base=tritonize-standin-base:bookworm
cache=${TRITONIZE_STANDIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tritonize-standin}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
if docker image inspect "$image" >/dev/null 2>&1; then echo "stand-in: $image exists"; exit 0; fi
if ! docker image inspect "$base" >/dev/null 2>&1; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    rootfs="$cache/rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,libpython3.11,ca-certificates \
        bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$cache/debootstrap.log" 2>&1
    tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
    rm -rf "$rootfs"
fi
wheels="$cache/wheelhouse"
if ! ls "$wheels"/nvidia_pytriton-0.7.0-*.whl >/dev/null 2>&1 || ! ls "$wheels"/numpy-1.*.whl >/dev/null 2>&1; then
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" nvidia-pytriton==0.7.0 'numpy<2'
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir "$context/wheelhouse"
cp "$wheels"/nvidia_pytriton-0.7.0-*.whl "$wheels"/numpy-1.*.whl "$context/wheelhouse/"
cp "$here/standin.Dockerfile" "$context/Dockerfile"
docker build -q --build-arg BASE="$base" -t "$image" "$context" >/dev/null 2>"$cache/build.log" || { cat "$cache/build.log" >&2; exit 1; }
echo "stand-in: built $image"
