#!/usr/bin/env python3
"""Benchmark `bilge diff A B` against one `bilge analyze` of each image and against the recipes a
user would otherwise run (container-diff is archived): `umoci unpack` of both, then `diff -rq` or
`rsync -rn --checksum` of the two trees. All measured in the same run, on the same machine.

Pairs (from ``benchmarks/make_large_image.sh WORK medium large``, OCI layouts with gzip layers):

- ``large-vs-squashed``: the large image (~1.2 GB of file bodies, 10 layers) against `bilge squash`
  of it (one layer, recompressed): two 1.2 GB images with no layer in common, same files;
- ``medium-vs-large``: a Dockerfile change (three more copies of /usr, a 256 MB file): the bottom
  layers are shared.

Every command runs under ``/usr/bin/time`` (peak RSS of the largest process; CPU seconds, user +
sys, of the process and its children). bilge commands run in interleaved rounds (diff, diff -j 1,
analyze A, analyze B, and with ``--before SRC`` the diff of another tree) so that a drifting load
hits them alike; times are medians of ``--repeat`` rounds (the baselines run once: they take minutes).

usage: PYTHONPATH=src python3 benchmarks/diff_bench.py --work WORK [--repeat 3] [--no-baseline] [--json OUT]
                                                       [--pairs NAME ...] [--before OTHER_TREE/src]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.tools import argv  # noqa: E402  (how peers are run)

PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}


def timed(cmd: list[str], ok: tuple[int, ...] = (0,), env: dict | None = None) -> tuple[float, int, str, float]:
    """(seconds, peak RSS in bytes, stdout, CPU seconds user+sys) of ``cmd`` under /usr/bin/time."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M CPU %U %S", *cmd], capture_output=True, text=True,
                          env=env or ENV)
    dt = time.perf_counter() - t0
    if proc.returncode not in ok:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    rss = [line.split() for line in proc.stderr.splitlines() if line.startswith("MAXRSS ")]
    if not rss:
        return dt, 0, proc.stdout, 0.0
    return dt, int(rss[-1][1]) * 1024, proc.stdout, float(rss[-1][3]) + float(rss[-1][4])


def summarize(runs: list[tuple[float, int, str, float]]) -> dict:
    return {"seconds": statistics.median(r[0] for r in runs), "min_seconds": min(r[0] for r in runs),
            "cpu_seconds": statistics.median(r[3] for r in runs), "peak_rss": max(r[1] for r in runs),
            "stdout": runs[-1][2]}


def interleaved(cmds: dict[str, tuple[list[str], dict]], repeat: int) -> dict[str, dict]:
    """Each command once per round, rounds repeated: on a shared machine whose load drifts, every
    command sees the same drift (medians of ``repeat`` rounds)."""
    runs: dict[str, list] = {k: [] for k in cmds}
    for _ in range(repeat):
        for key, (cmd, env) in cmds.items():
            runs[key].append(timed(cmd, env=env))
    return {k: summarize(v) for k, v in runs.items()}


def bilge(*args: str) -> list[str]:
    return [PY, "-m", "bilge", *args]


def baseline(a_oci: str, b_oci: str, tmp: Path) -> dict:
    """umoci unpack both (as root: real owners), then diff -rq and rsync -n --checksum of the trees."""
    out: dict = {}
    dirs = []
    total = 0.0
    for name, ref in (("a", a_oci), ("b", b_oci)):
        bundle = tmp / f"bundle-{name}"
        shutil.rmtree(bundle, ignore_errors=True)
        dt, _, _, _ = timed([*argv("umoci"), "unpack", "--image", ref, str(bundle)])
        out[f"umoci_unpack_{name}"] = dt
        total += dt
        dirs.append(bundle / "rootfs")
    dt, _, stdout, _ = timed([*argv("diff"), "-rq", "--no-dereference", str(dirs[0]), str(dirs[1])], ok=(0, 1))
    out["diff_rq"] = dt
    out["diff_rq_lines"] = len(stdout.splitlines())
    dt, _, stdout, _ = timed([*argv("rsync"), "-rlpgon", "--checksum", "--delete", "--itemize-changes",
                           f"{dirs[0]}/", f"{dirs[1]}/"])
    out["rsync_checksum"] = dt
    out["rsync_lines"] = len(stdout.splitlines())
    out["recipe_diff_seconds"] = total + out["diff_rq"]
    out["recipe_rsync_seconds"] = total + out["rsync_checksum"]
    for d in dirs:
        shutil.rmtree(d.parent, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / "work"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--pairs", nargs="*", default=["large-vs-squashed", "medium-vs-large"])
    ap.add_argument("--json")
    ap.add_argument("--before", metavar="SRC", help="also time `bilge diff` from this src directory (another "
                                                     "worktree's src/), interleaved in the same rounds")
    args = ap.parse_args()
    work = Path(args.work)
    for size in ("medium", "large"):
        if not (work / size / "oci" / "index.json").exists():
            raise SystemExit(f"{work / size / 'oci'} missing: run bash benchmarks/make_large_image.sh {work} medium large")
    squashed = work / "large-squashed"
    if "large-vs-squashed" in args.pairs and not (squashed / "index.json").exists():
        print("making large-squashed with bilge squash ...", file=sys.stderr)
        subprocess.run(bilge("squash", f"oci:{work / 'large' / 'oci'}:latest", "-o", f"oci:{squashed}:latest"),
                       check=True, env=ENV, capture_output=True)
    pairs = {"large-vs-squashed": (f"oci:{work / 'large' / 'oci'}:latest", f"oci:{squashed}:latest"),
             "medium-vs-large": (f"oci:{work / 'medium' / 'oci'}:latest", f"oci:{work / 'large' / 'oci'}:latest")}
    results = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}, "pairs": {}}
    for name in args.pairs:
        a, b = pairs[name]
        r: dict = {"a": a, "b": b}
        print(f"== {name}", file=sys.stderr)
        cmds = {"diff": (bilge("diff", a, b, "--format", "json"), ENV),
                "diff_j1": (bilge("diff", a, b, "-j", "1", "--format", "json"), ENV),
                "analyze_a": (bilge("analyze", a, "--format", "json"), ENV),
                "analyze_b": (bilge("analyze", b, "--format", "json"), ENV)}
        if args.before:  # the same diff from another tree (e.g. main before a change), same rounds
            cmds["diff_before"] = (bilge("diff", a, b, "--format", "json"),
                                   {**ENV, "PYTHONPATH": str(Path(args.before).resolve())})
        got = interleaved(cmds, args.repeat)
        doc = json.loads(got["diff"]["stdout"])
        if args.before:
            before = json.loads(got["diff_before"]["stdout"])
            same = [e["path"] for e in before["entries"]] == [e["path"] for e in doc["entries"]]
            r["before_same_entries"] = same
        for key, res in got.items():
            res.pop("stdout")
            r[key] = res
        r["summary"] = {k: doc["summary"][k] for k in ("changes", "shared_layers", "added_bytes", "removed_bytes")}
        r["visible_bytes"] = (doc["summary"]["a"]["visible_bytes"], doc["summary"]["b"]["visible_bytes"])
        budget = r["analyze_a"]["seconds"] + r["analyze_b"]["seconds"]
        r["diff_over_analyze_sum"] = r["diff"]["seconds"] / budget
        r["diff_cpu_over_analyze_cpu_sum"] = r["diff"]["cpu_seconds"] / (r["analyze_a"]["cpu_seconds"]
                                                                         + r["analyze_b"]["cpu_seconds"])
        if args.before:
            r["before_over_analyze_sum"] = r["diff_before"]["seconds"] / budget
            r["before_cpu_over_analyze_cpu_sum"] = r["diff_before"]["cpu_seconds"] / (
                r["analyze_a"]["cpu_seconds"] + r["analyze_b"]["cpu_seconds"])
        if not args.no_baseline:
            oci_a = a[len("oci:"):]
            oci_b = b[len("oci:"):]
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                r["baseline"] = baseline(oci_a, oci_b, Path(tmp))
            r["recipe_over_diff"] = r["baseline"]["recipe_diff_seconds"] / r["diff"]["seconds"]
        r["load_after"] = os.getloadavg()
        results["pairs"][name] = r
        print(json.dumps(r, indent=2), file=sys.stderr)
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
