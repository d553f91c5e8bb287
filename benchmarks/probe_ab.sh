#!/bin/sh
# A/B of `bilge slim --probe` (issue 13): benchmarks/probe_bench.py from two checkouts of bilge,
# alternating on the same machine, each round after then before; the load average is printed at each
# start (the machine is shared). The images are built (from the engine's cache after the first time)
# and saved by each run; the JSON goes to WORK/ab-STACK-{after,before}-ROUND.json.
#
#   benchmarks/probe_ab.sh AFTER_TREE BEFORE_TREE [STACK] [ROUNDS...]
#   benchmarks/probe_ab.sh /work/wt-probe3 /work/main rails 1 2 3
set -eu
after=$1 before=$2 stack=${3:-rails}
shift 2; [ $# -gt 0 ] && shift
rounds=${*:-1 2}
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-$here/../.venv/bin/python}
work=${WORK:-$here/work/probe}
mkdir -p "$work"
for r in $rounds; do
  for side in after before; do
    if [ "$side" = after ]; then tree=$after; else tree=$before; fi
    echo "== round $r $side $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    nice -n 5 "$py" "$tree/benchmarks/probe_bench.py" --stack "$stack" --work "$work" \
      --json "$work/ab-$stack-$side-$r.json" 2>&1 | tail -2
  done
done
echo "== done $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
