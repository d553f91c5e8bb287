"""A/B of the materialise step of `bilge slim --probe` alone (issue 13): one read of the layers and
the tree written to /dev/shm, from several checkouts of bilge, alternating, each in a fresh process.

    python benchmarks/materialise_bench.py ARCHIVE TREE [TREE ...] [--rounds N]
    python benchmarks/materialise_bench.py benchmarks/work/probe/rails.tar /work/wt-probe4 /work/main --rounds 5

Prints, per run, the wall seconds and the process's user and system CPU seconds (all threads), and the
load average: on a shared machine the wall time moves with the load, the CPU much less.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import os, resource, sys, time
sys.path.insert(0, sys.argv[1] + "/src")
from bilge.probe.materialise import materialise
from bilge.source import open_image
with open_image("docker-archive:" + sys.argv[2]) as src:
    r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    mat, read, writer = materialise(src, parent="/dev/shm")
    wall, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
    mat.remove()
load = open("/proc/loadavg").read().split()[0]
print(f"{sys.argv[1]:24s} wall {wall:5.2f}  user {r1.ru_utime - r0.ru_utime:5.2f}  sys {r1.ru_stime - r0.ru_stime:5.2f}"
      f"  files {mat.files}  bytes {mat.bytes}  load {load}", flush=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive")
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for _ in range(args.rounds):
        for tree in args.trees:
            subprocess.run([sys.executable, "-c", CHILD, tree, args.archive], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
