#!/usr/bin/env bash
# Build the benchmark images with the real engine, each in two forms:
#   WORK/<size>/docker.tar      `docker save` (uncompressed layers)
#   WORK/<size>/oci/            skopeo's OCI layout of the same image (gzip layers), tag "latest"
#
# Sizes (uncompressed layer bytes, approximately):
#   small    ~170 MB   bilge-base:bookworm + a RUN that deletes /usr/share/locale
#   medium   ~630 MB   + 3 layers each holding a copy of /usr (real Debian binaries, libraries, docs)
#   large   ~1.4 GB    + 6 copies of /usr, a 256 MB single file, ~45 000 files
# Every size ends with a RUN deleting one copy, so there is dead weight to find.
#
# usage: benchmarks/make_large_image.sh [WORK] [SIZES...]   (default: benchmarks/work small medium large)
# Needs a Docker engine, Debian's /usr/bin/docker (BuildKit), skopeo, and bilge-base:bookworm
# (made by tests/base-image.sh when missing). Takes a few minutes; needs ~6 GB of disk.
set -euo pipefail

cd "$(dirname "$0")/.."
WORK=$(realpath -m "${1:-benchmarks/work}")
shift || true
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(small medium large)
DOCKER=${BILGE_DOCKER:-/usr/bin/docker}
BASE=bilge-base:bookworm

log() { printf '==> %s\n' "$*" >&2; }

BILGE_DOCKER=$DOCKER tests/base-image.sh  # builds the base when missing or made by an older recipe

dockerfile() {  # copies bigfile_mb
  local copies=$1 bigfile_mb=$2
  echo "FROM $BASE"
  echo "RUN rm -rf /usr/share/locale"
  for i in $(seq 1 "$copies"); do
    # a real tree of binaries, libraries and text; the marker makes each layer's content distinct
    echo "RUN mkdir -p /data/copy$i && cp -a /usr/bin /usr/lib /usr/share /usr/sbin /data/copy$i/ && echo $i > /data/copy$i/ID"
  done
  if ((bigfile_mb)); then
    # one large file made of real ELF code (compresses like binaries do), read in one body
    echo "RUN mkdir -p /data/big && while [ \$(stat -c %s /data/big/blob 2>/dev/null || echo 0) -lt $((bigfile_mb << 20)) ]; do cat /usr/lib/x86_64-linux-gnu/*.so* /usr/bin/* >> /data/big/blob 2>/dev/null; done && truncate -s ${bigfile_mb}M /data/big/blob"
  fi
  if ((copies)); then
    echo "RUN rm -rf /data/copy1"
  fi
  echo 'CMD ["/bin/sh"]'
}

for size in "${SIZES[@]}"; do
  case $size in
    small) copies=0 big=0 ;;
    medium) copies=3 big=0 ;;
    large) copies=6 big=256 ;;
    *) echo "unknown size: $size (small, medium, large)" >&2; exit 2 ;;
  esac
  dir=$WORK/$size
  mkdir -p "$dir/context"
  dockerfile "$copies" "$big" >"$dir/context/Dockerfile"
  tag=bilge-bench-$size:latest
  log "$size: docker build ($copies copies of /usr, a ${big} MB file)"
  DOCKER_BUILDKIT=1 "$DOCKER" build -q -t "$tag" "$dir/context" >/dev/null
  log "$size: docker save -> $dir/docker.tar"
  rm -f "$dir/docker.tar"
  "$DOCKER" save -o "$dir/docker.tar" "$tag"
  log "$size: skopeo copy -> oci:$dir/oci:latest (gzip layers)"
  rm -rf "$dir/oci"
  skopeo --insecure-policy copy --quiet "docker-archive:$dir/docker.tar" "oci:$dir/oci:latest"
  python3 - "$dir" <<'EOF'
import json, sys, tarfile
from pathlib import Path
d = Path(sys.argv[1])
index = json.loads((d / "oci/index.json").read_text())
man = json.loads((d / "oci/blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
gz = sum(layer["size"] for layer in man["layers"])
files = size = 0
with tarfile.open(d / "docker.tar") as outer:
    manifest = json.load(outer.extractfile("manifest.json"))
    for name in manifest[0]["Layers"]:
        member = outer.getmember(name)
        if member.issym():  # Docker 25+ layout links layer paths to blobs
            member = outer.getmember(str(Path(name).parent / member.linkname))
        with tarfile.open(fileobj=outer.extractfile(member), mode="r|") as layer:
            for m in layer:
                if m.isreg():
                    files += 1
                    size += m.size
print(f"    {d.name}: {len(man['layers'])} layers, {files} regular-file entries, {size / 1e6:.0f} MB of file bodies, "
      f"{(d / 'docker.tar').stat().st_size / 1e6:.0f} MB docker-archive, {gz / 1e6:.0f} MB gzip blobs", file=sys.stderr)
EOF
done
