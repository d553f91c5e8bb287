#!/usr/bin/env bash
# Rebuild the demo image shipped inside the package: src/bilge/data/demo.tar.gz
# (a gzip of the `docker save` archive of demo/Dockerfile). See demo/README.md.
#
# Needs: a Docker engine, Debian's docker client (/usr/bin/docker: BuildKit without buildx),
# the base image bilge-base:bookworm (made by tests/base-image.sh when missing), skopeo, gzip.
#
# Environment: BUSYBOX_VERSION / MAKE_VERSION pin the Debian packages (defaults below; when the
# pinned version has left the archive the build falls back to the current one and says so).
set -euo pipefail

cd "$(dirname "$0")/.."
DOCKER=${BILGE_DOCKER:-/usr/bin/docker}
BASE=bilge-base:bookworm
TAG=bilge-demo:latest
OUT=src/bilge/data/demo.tar.gz
BUSYBOX_VERSION=${BUSYBOX_VERSION-1:1.35.0-4+deb12u1+b1}
MAKE_VERSION=${MAKE_VERSION-4.3-4.1}
MAX_BYTES=$((10 * 1024 * 1024))

log() { printf '==> %s\n' "$*" >&2; }

BILGE_DOCKER=$DOCKER tests/base-image.sh  # builds the base when missing or made by an older recipe

# A fake GitHub personal access token of the real format: ghp_ + 30 random [A-Za-z0-9] + the six
# base-62 digits of their CRC32 (GitHub's checksum; bilge reports a value without it as low). Fresh each build.
TOKEN=$(python3 -c '
import secrets, string, zlib
a = string.ascii_letters + string.digits
b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
body = "".join(secrets.choice(a) for _ in range(30))
n, s = zlib.crc32(body.encode()), ""
while n:
    n, r = divmod(n, 62)
    s = b62[r] + s
print("ghp_" + body + s.rjust(6, "0"))')

build() {
  DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain \
    --build-arg "BUSYBOX_VERSION=$1" --build-arg "MAKE_VERSION=$2" \
    --build-arg "GITHUB_ACCESS_TOKEN=$TOKEN" \
    -t "$TAG" demo/
}

log "building $TAG (busybox-static ${BUSYBOX_VERSION:-current}, make ${MAKE_VERSION:-current})"
if ! build "$BUSYBOX_VERSION" "$MAKE_VERSION" >/tmp/bilge-demo-build.log 2>&1; then
  log "pinned packages unavailable? retrying with the archive's current versions (log: /tmp/bilge-demo-build.log)"
  build "" "" >/tmp/bilge-demo-build.log 2>&1 || { tail -30 /tmp/bilge-demo-build.log >&2; exit 1; }
fi

# The token must show in the history: that is the story.
"$DOCKER" history --no-trunc --format '{{.CreatedBy}}' "$TAG" | grep -q "GITHUB_ACCESS_TOKEN=$TOKEN" \
  || { echo "build arg not visible in the history" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$DOCKER" save -o "$tmp/demo.tar" "$TAG"
skopeo inspect "docker-archive:$tmp/demo.tar" >"$tmp/inspect.json"
gzip -n -9 -c "$tmp/demo.tar" >"$OUT.tmp"
size=$(stat -c %s "$OUT.tmp")
((size < MAX_BYTES)) || { rm -f "$OUT.tmp"; echo "demo image too big: $size bytes" >&2; exit 1; }
mv "$OUT.tmp" "$OUT"

log "wrote $OUT ($size bytes, $(stat -c %s "$tmp/demo.tar") uncompressed)"
python3 - "$tmp/inspect.json" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
print(f"    digest {info['Digest']}  layers {len(info['Layers'])}  {info['Os']}/{info['Architecture']}", file=sys.stderr)
EOF
"$DOCKER" history --format '{{printf "%-8s" .Size}} {{.CreatedBy}}' "$TAG" >&2
