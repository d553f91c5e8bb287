#!/usr/bin/env bash
# Make bilge-base:bookworm, the Debian 12 image every image built here starts from (the integration
# tests, the benchmarks, the demo), unless the engine already holds this recipe's version of it.
#
# No public registry is reachable from the machines bilge is tested on, so it is Debian's minbase made
# by mmdebstrap and imported into the engine. It is set up as Debian's official images are
# (debuerreotype): apt deletes its package caches (/var/cache/apt/*.bin, ~90 MB after an
# `apt-get update`) and downloaded .debs after every run, and fetches no translations. Without that,
# every image that installs a package carries those caches, the hand-made multistage builds the
# benchmarks compare with included, and any size ratio against them flatters the slim image.
#
# usage: tests/base-image.sh   Environment: BILGE_DOCKER (default /usr/bin/docker), BILGE_DEBIAN_MIRROR.
set -euo pipefail

DOCKER=${BILGE_DOCKER:-/usr/bin/docker}
BASE=bilge-base:bookworm
MIRROR=${BILGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
RECIPE=2  # raise when the recipe below changes: an engine holding an older base then rebuilds it

have=$("$DOCKER" image inspect --format '{{index .Config.Labels "org.bilge.base.recipe"}}' "$BASE" 2>/dev/null || true)
if [[ $have == "$RECIPE" ]]; then
  exit 0
fi
printf '==> building %s with mmdebstrap (Debian 12 minbase, recipe %s)\n' "$BASE" "$RECIPE" >&2

# The hook runs outside the chroot; "$1" is the chroot's root directory.
# shellcheck disable=SC2016
HOOK='conf="$1/etc/apt/apt.conf.d"
clean="rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"
printf "DPkg::Post-Invoke { \"%s\"; };\nAPT::Update::Post-Invoke { \"%s\"; };\nDir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n" "$clean" "$clean" > "$conf/docker-clean"
printf "Acquire::Languages \"none\";\n" > "$conf/docker-no-languages"
rm -f "$1"/var/cache/apt/*.bin'

/usr/bin/mmdebstrap --quiet --variant=minbase --customize-hook="$HOOK" bookworm - "$MIRROR" \
  | "$DOCKER" import --change "LABEL org.bilge.base.recipe=$RECIPE" - "$BASE" >/dev/null
