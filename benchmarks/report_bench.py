#!/usr/bin/env python3
"""Benchmark `bilge report` (every section) against `bilge secrets` of the same image, in one run.

usage: python3 benchmarks/report_bench.py IMAGE [--dockerfile PATH] [--entrypoint] [--repeat 3]

Runs, alternately, ``bilge secrets IMAGE --format json`` and ``bilge report IMAGE -o FILE`` (with
``--dockerfile`` and ``--entrypoint`` when given: the lint and deps sections), each as its own
process (``python -m bilge`` with ``PYTHONPATH=src``, wall-clock time including start-up), and
prints the median wall-clock and CPU time (user + system, all threads) of each, their ratios (the issue
asks for at most 1.1: one read of the image serves every section), the ratios of the fastest runs and the
median of each round's own ratio (both less sensitive to other jobs on a shared machine), the size of
the HTML file and the number of treemap nodes in it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(argv: list[str]) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds: user + system of the child and all its threads)."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bilge", *argv], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def count_nodes(node: dict) -> int:
    return 1 + sum(count_nodes(c) for c in node.get("c", ()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--dockerfile")
    ap.add_argument("--entrypoint", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bilge-report-bench-") as tmp:
        out = Path(tmp) / "report.html"
        report = ["report", args.image, "-o", str(out), "-q"]
        if args.dockerfile:
            report += ["--dockerfile", args.dockerfile]
        if args.entrypoint:
            report += ["--entrypoint"]
        secrets = ["secrets", args.image, "--format", "json"]
        times: dict[str, list[float]] = {"secrets": [], "report": []}
        cpu: dict[str, list[float]] = {"secrets": [], "report": []}
        for _ in range(args.repeat):
            for name, cmd in (("secrets", secrets), ("report", report)):
                wall, used = run(cmd)
                times[name].append(wall)
                cpu[name].append(used)
        size = out.stat().st_size
        html = out.read_text(encoding="utf-8")
        start = html.index('<script type="application/json" id="bilge-data">') + len(
            '<script type="application/json" id="bilge-data">')
        data = json.loads(html[start:html.index("</script>", start)])
        med = {k: statistics.median(v) for k, v in times.items()}
        mcpu = {k: statistics.median(v) for k, v in cpu.items()}
        print(json.dumps({
            "image": args.image, "repeat": args.repeat, "secrets_s": round(med["secrets"], 2),
            "report_s": round(med["report"], 2), "ratio": round(med["report"] / med["secrets"], 3),
            "secrets_cpu_s": round(mcpu["secrets"], 2), "report_cpu_s": round(mcpu["report"], 2),
            "cpu_ratio": round(mcpu["report"] / mcpu["secrets"], 3),
            # less sensitive to a shared machine: the fastest run of each, and each round's own ratio
            "min_ratio": round(min(times["report"]) / min(times["secrets"]), 3),
            "min_cpu_ratio": round(min(cpu["report"]) / min(cpu["secrets"]), 3),
            "round_ratio_median": round(statistics.median(r / s for r, s in zip(times["report"], times["secrets"],
                                                                                strict=True)), 3),
            "html_bytes": size, "treemap_nodes": count_nodes(data["tree"]), "files": data["tree"]["f"],
            "runs": {k: [round(x, 2) for x in v] for k, v in times.items()},
            "cpu_runs": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
        }, indent=2))


if __name__ == "__main__":
    main()
