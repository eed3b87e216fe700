#!/usr/bin/env bash
# Builds Legate's FROM scratch images from already-built static binaries
# (make image runs make build first). Environment: BIN (binaries), IMAGE_TAG,
# VERSION, COMMIT, BUILD_DATE; CA_BUNDLE (default: the host's Debian bundle).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
BIN="${BIN:-$root/bin}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

for f in "$BIN/legate" "$BIN/demo-service" "$BIN/legate-cp" "$CA_BUNDLE"; do
	[ -f "$f" ] || { echo "build-images: $f is missing" >&2; exit 1; }
done
# A FROM scratch image has no loader: refuse anything dynamically linked
# (checked when binutils is installed).
for f in "$BIN/legate" "$BIN/demo-service" "$BIN/legate-cp"; do
	if command -v readelf >/dev/null && readelf -l "$f" 2>/dev/null | grep -q 'Requesting program interpreter'; then
		echo "build-images: $f is not statically linked (build with CGO_ENABLED=0)" >&2
		exit 1
	fi
done

# A small context with only what the images contain: the repository itself
# would be sent to the daemon otherwise.
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$here/passwd" "$here/group" "$ctx/"
cp "$root/packaging/legate.yaml" "$BIN/legate" "$BIN/demo-service" "$BIN/legate-cp" "$ctx/"
cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
chmod 0644 "$ctx"/passwd "$ctx"/group "$ctx"/legate.yaml "$ctx"/ca-certificates.crt
chmod 0755 "$ctx"/legate "$ctx"/demo-service "$ctx"/legate-cp

args=(--build-arg "VERSION=${VERSION:-dev}" --build-arg "COMMIT=${COMMIT:-unknown}" --build-arg "BUILD_DATE=${BUILD_DATE:-unknown}")
docker build -q "${args[@]}" --target legate -t "legate:$IMAGE_TAG" -t legate:latest "$ctx"
docker build -q "${args[@]}" --target demo-service -t "legate-demo-service:$IMAGE_TAG" -t legate-demo-service:latest "$ctx"
docker build -q "${args[@]}" --target legate-cp -t "legate-cp:$IMAGE_TAG" -t legate-cp:latest "$ctx"
echo "built legate:$IMAGE_TAG, legate-demo-service:$IMAGE_TAG and legate-cp:$IMAGE_TAG"
