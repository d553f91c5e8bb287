"""Benchmark: `bilge slim --probe` on application images built from Debian's packages, PyPI and npm.

    python benchmarks/probe_bench.py                      # every stack (flask, express, rails, flask-pip, express-npm)
    python benchmarks/probe_bench.py --stack flask --json benchmarks/work/probe.json

For each stack of tests/integration/probe_stacks.py, in one run:

* builds the single-stage image (build tools next to the runtime, like the story's Dockerfile) and the
  hand-made multistage one with the engine, `docker save`s the single-stage one;
* runs every probe in the engine on the single-stage image (`docker run --rm --network none`): the
  reference output, and the probes' own time (with the engine's start-up per run);
* times `bilge analyze` of the archive (the cost of reading the image once);
* times `bilge slim --probe ... -o docker-archive:...` (everything: read, materialise, probes under
  strace, plan, verify, write) and `bilge slim --entrypoint --keep <runtime trees named by hand>`;
* `docker load`s both results and runs every probe on them in the engine: the output must equal the
  reference; sizes are the engine's (`docker image inspect .Size`).

Prints a table and writes JSON. The goals of issue 13: the probe-slimmed image passes the probes in
the engine, is at most 0.25x the multistage image and smaller than the --keep one, and slimming takes
less than twice (probes + analyze).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent))

from tests.integration.probe_stacks import STACKS, Stack, write_context  # noqa: E402

DOCKER = "/usr/bin/docker"


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def must(cmd: list[str], **kw) -> str:
    proc = sh(cmd, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return proc.stdout


def build(stack: Stack, kind: str, tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="probe-bench-") as ctx:
        write_context(stack, kind, Path(ctx))  # with PyPI's or npm's packages downloaded (flask-pip, express-npm)
        must([DOCKER, "build", "-q", "-t", tag, ctx], env={**os.environ, "DOCKER_BUILDKIT": "1"})


def size(tag: str) -> int:
    return int(json.loads(must([DOCKER, "image", "inspect", tag]))[0]["Size"])


def run_probes(tag: str, probes: tuple[str, ...]) -> tuple[list[str], float]:
    outs, total = [], 0.0
    for p in probes:
        t = time.perf_counter()
        proc = sh([DOCKER, "run", "--rm", "--network", "none", tag, *shlex.split(p)], timeout=300)
        total += time.perf_counter() - t
        outs.append(f"exit {proc.returncode}\n{proc.stdout}")
    return outs, total


def bilge(*args: str) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), "NO_COLOR": "1"}
    t = time.perf_counter()
    out = must([sys.executable, "-m", "bilge", *args], env=env, timeout=3600)
    return out, time.perf_counter() - t


def bench(stack: Stack, work: Path) -> dict:
    single, multi = f"probe-bench-{stack.name}:single", f"probe-bench-{stack.name}:multi"
    slim_tag, keep_tag = f"probe-bench-{stack.name}:slim", f"probe-bench-{stack.name}:keep"
    t = time.perf_counter()
    build(stack, "single", single)
    build(stack, "multi", multi)
    build_s = time.perf_counter() - t
    archive = work / f"{stack.name}.tar"
    must([DOCKER, "save", "-o", str(archive), single])
    want, probes_s = run_probes(single, stack.probes)
    _, analyze_s = bilge("analyze", str(archive), "--format", "json")
    probe_args = [a for p in stack.probes for a in ("--probe", p)]
    slim_out = work / f"{stack.name}-slim.tar"
    doc, slim_s = bilge("slim", str(archive), *probe_args, "-o", f"docker-archive:{slim_out}:{slim_tag}",
                        "--format", "json")
    report = json.loads(doc)
    keep_out = work / f"{stack.name}-keep.tar"
    keep_args = [a for k in stack.keep for a in ("--keep", k)]
    proc = sh([sys.executable, "-m", "bilge", "slim", str(archive), "--entrypoint", *keep_args,
               "-o", f"docker-archive:{keep_out}:{keep_tag}", "-q"],
              env={**os.environ, "PYTHONPATH": str(HERE.parent / "src")})
    keep_ok = keep_out.exists()
    results = {}
    for tag, path in ((slim_tag, slim_out), (keep_tag, keep_out)):
        if not path.exists():
            results[tag] = None
            continue
        must([DOCKER, "load", "-i", str(path)])
        got, _ = run_probes(tag, stack.probes)
        results[tag] = [g == w for g, w in zip(got, want, strict=True)]
    sizes = {"single": size(single), "multi": size(multi), "slim_probe": size(slim_tag),
             "slim_keep": size(keep_tag) if keep_ok else None}
    return {
        "stack": stack.name, "build_seconds": round(build_s, 1), "sizes": sizes,
        "probe_vs_multi": round(sizes["slim_probe"] / sizes["multi"], 3),
        "probe_vs_single": round(sizes["slim_probe"] / sizes["single"], 3),
        "keep_vs_multi": round(sizes["slim_keep"] / sizes["multi"], 3) if keep_ok else None,
        "probes_pass_in_engine": results[slim_tag], "keep_passes_in_engine": results[keep_tag],
        "keep_exit": proc.returncode,
        "reference": want,
        "seconds": {"probes_in_engine": round(probes_s, 2), "analyze": round(analyze_s, 2),
                    "slim_probe": round(slim_s, 2),
                    "ratio_slim_to_probes_plus_analyze": round(slim_s / (probes_s + analyze_s), 2),
                    "bilge_probe_runs": report["probe"]["probe_seconds"],
                    "materialise": report["probe"]["materialise_seconds"],
                    "verify": report["probe"]["verify_seconds"]},
        "kept_by_origin": report.get("kept_by_origin"),
        "bilge_verified": report["probe"]["ok"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stack", action="append", choices=sorted(STACKS))
    ap.add_argument("--work", default=str(HERE / "work" / "probe"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    must(["bash", str(HERE.parent / "tests" / "base-image.sh")], env={**os.environ, "BILGE_DOCKER": DOCKER})
    rows = []
    for name in args.stack or list(STACKS):
        row = bench(STACKS[name], work)
        rows.append(row)
        s = row["sizes"]
        print(f"{name:8} single {s['single'] / 1e6:7.1f} MB  multi {s['multi'] / 1e6:7.1f} MB  "
              f"--probe {s['slim_probe'] / 1e6:6.1f} MB ({row['probe_vs_multi']}x multi)  "
              f"--keep {(s['slim_keep'] or 0) / 1e6:6.1f} MB  engine pass {row['probes_pass_in_engine']}  "
              f"keep pass {row['keep_passes_in_engine']}  times {row['seconds']}", flush=True)
    out = Path(args.json or work / "results.json")
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
