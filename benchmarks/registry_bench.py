#!/usr/bin/env python3
"""Benchmark bilge's registry and engine sources against reading the same image from disk.

Issue 10's targets, measured in one run on the same machine:

- ``analyze docker://127.0.0.1:PORT/bench/large:1`` (a real Debian ``docker-registry`` on loopback,
  the image pushed there with ``skopeo copy``) against ``analyze oci:WORK/large/oci:latest`` (the same
  gzip blobs on disk): throughput >= 0.8x, peak RSS within 20 MB;
- ``analyze docker-daemon:bench-large:1`` against ``docker save -o FILE`` alone and against
  ``docker save -o FILE`` followed by ``analyze docker-archive:FILE``.

Every bilge run also prints its numbers; the benchmark checks that the registry and the layout give
the same totals (the same image read two ways), so a fast wrong answer cannot pass.

Usage (the engine must be running; the images come from make_large_image.sh):

    bash benchmarks/make_large_image.sh /work/bench-work large
    .venv/bin/python benchmarks/registry_bench.py --work /work/bench-work --size large --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.integration.registry_env import Registry  # noqa: E402  (the same registry the tests start)

DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"
BILGE = [sys.executable, "-m", "bilge"]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes, stdout) of one run under /usr/bin/time."""
    e = {k: v for k, v in os.environ.items() if k != "CI"}
    e.update({"PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1", **(env or {})})
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], capture_output=True, text=True, env=e)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    rss = [line for line in proc.stderr.splitlines() if line.startswith("MAXRSS ")]
    return dt, int(rss[-1].split()[1]) * 1024 if rss else 0, proc.stdout


def totals(stdout: str) -> dict:
    data = json.loads(stdout)
    s = data["summary"]
    return {k: s[k] for k in sorted(s) if isinstance(s[k], int)}


def median_run(label: str, cmd: list[str], repeat: int, results: dict) -> tuple[float, int, str]:
    times, rsss, out = [], [], ""
    for _ in range(repeat):
        dt, rss, out = timed(cmd)
        times.append(dt)
        rsss.append(rss)
    med = statistics.median(times)
    results[label] = {"seconds": round(med, 3), "min": round(min(times), 3), "peak_rss_mib": round(max(rsss) / 2**20, 1)}
    print(f"{label:<48} {med:7.2f} s   peak RSS {max(rsss) / 2**20:6.1f} MiB", flush=True)
    return med, max(rsss), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(REPO / "benchmarks" / "work"))
    ap.add_argument("--size", default="large")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-daemon", action="store_true", help="skip the docker-daemon: part")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    work = Path(args.work) / args.size
    layout, archive = work / "oci", work / "docker.tar"
    if not (layout / "index.json").is_file() or not archive.is_file():
        raise SystemExit(f"{work}: no benchmark image; run: bash benchmarks/make_large_image.sh {args.work} {args.size}")
    image_bytes = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
    results: dict = {"size": args.size, "blob_bytes": image_bytes, "repeat": args.repeat}

    with tempfile.TemporaryDirectory(prefix="bilge-regbench-") as tmp:
        reg = Registry(Path(tmp) / "registry").start()
        try:
            ref = reg.push(f"oci:{layout}:latest", f"bench/{args.size}:1")
            print(f"pushed {image_bytes / 1e6:.0f} MB of blobs to {ref}", flush=True)
            t_oci, rss_oci, out_oci = median_run("analyze oci:DIR", [*BILGE, "analyze", "-f", "json", f"oci:{layout}:latest"],
                                                 args.repeat, results)
            t_reg, rss_reg, out_reg = median_run("analyze docker://127.0.0.1 (registry)",
                                                 [*BILGE, "analyze", "-f", "json", "--tls-verify=false", ref],
                                                 args.repeat, results)
        finally:
            reg.close()
        if totals(out_oci) != totals(out_reg):
            raise SystemExit(f"registry and layout disagree:\n{totals(out_oci)}\n{totals(out_reg)}")
        results["registry_vs_oci_throughput"] = round(t_oci / t_reg, 3)
        results["registry_minus_oci_rss_mib"] = round((rss_reg - rss_oci) / 2**20, 1)
        print(f"registry throughput = {t_oci / t_reg:.2f}x of oci:DIR (goal >= 0.8x); "
              f"RSS {(rss_reg - rss_oci) / 2**20:+.1f} MiB (goal within 20 MB)", flush=True)

        if not args.no_daemon:
            tag = f"bilge-bench-{args.size}:1"
            loaded = subprocess.run([DOCKER, "load", "-i", str(archive)], check=True, capture_output=True,
                                    text=True).stdout
            image_id = loaded.strip().split()[-1]
            subprocess.run([DOCKER, "tag", image_id, tag], check=True)
            saved = Path(tmp) / "saved.tar"
            t_save, _, _ = median_run("docker save -o FILE", [DOCKER, "save", "-o", str(saved), tag], args.repeat, results)
            t_arch, _, out_arch = median_run("analyze docker-archive:FILE (after save)",
                                             [*BILGE, "analyze", "-f", "json", f"docker-archive:{saved}"], args.repeat, results)
            t_dmn, _, out_dmn = median_run("analyze docker-daemon:", [*BILGE, "analyze", "-f", "json", f"docker-daemon:{tag}"],
                                           args.repeat, results)
            if totals(out_arch) != totals(out_dmn):
                raise SystemExit(f"engine and saved archive disagree:\n{totals(out_arch)}\n{totals(out_dmn)}")
            results["daemon_vs_save_plus_analyze"] = round((t_save + t_arch) / t_dmn, 3)
            results["daemon_vs_save_alone"] = round(t_save / t_dmn, 3)
            print(f"docker-daemon: = {(t_save + t_arch) / t_dmn:.2f}x the speed of save + analyze, "
                  f"{t_save / t_dmn:.2f}x of save alone", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
