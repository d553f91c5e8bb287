#!/bin/bash
# A/B of `bilge report` against `bilge secrets` (issue 15) from two checkouts, alternating on the same
# machine: each round runs benchmarks/report_bench.py --repeat 1 from each tree (in the order given) and
# prints the tree, secrets and report wall seconds, their ratio, then the same in CPU seconds.
#
#   benchmarks/report_ab.sh TREE_A TREE_B [ROUNDS] [IMAGE] [DOCKERFILE]
#   benchmarks/report_ab.sh /work/main /work/wt-base 5
set -eu
a=$1 b=$2 rounds=${3:-5}
image=${4:-oci:/work/bench-work/large/oci:latest}
df=${5:-/work/bench-work/large/context/Dockerfile}
py=${PYTHON:-$(cd "$(dirname "$0")" && pwd)/../.venv/bin/python}
for r in $(seq 1 "$rounds"); do
  for t in "$a" "$b"; do
    "$py" "$t/benchmarks/report_bench.py" "$image" --dockerfile "$df" --entrypoint --repeat 1 |
      T="$t" python3 -c "import json, os, sys; d = json.load(sys.stdin); r, c = d['runs'], d['cpu_runs']
print(os.environ['T'], r['secrets'][0], r['report'][0], d['ratio'], c['secrets'][0], c['report'][0], d['cpu_ratio'])"
  done
done
