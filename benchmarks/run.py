#!/usr/bin/env python3
"""Benchmark `bilge analyze` against the plain cost of reading the same bytes, in one run.

For every image size built by ``make_large_image.sh`` (WORK/<size>/oci and WORK/<size>/docker.tar):

- gzip layers (OCI layout): ``bilge analyze`` (with and without ``--no-verify``) against plain gzip
  decompression of the same blobs -- Python's zlib (streaming, 1 MiB chunks), ISA-L's
  ``isal_zlib`` (the same loop), and ``gzip -dc`` -- and ``umoci unpack`` of the same image as a peer;
- uncompressed ``docker save`` archive: ``bilge analyze`` (with and without ``--no-verify``) against
  reading all its bytes (``cat > /dev/null``);
- peak RSS of every command (``wait4`` rusage of the child: ``ru_maxrss``).

Each measurement is the median of ``--repeat`` runs. By default the page cache is warm (every file
is read once before timing); ``--cold`` drops the page cache (root) before every timed run.

usage: python3 benchmarks/run.py [--work benchmarks/work] [--sizes small medium large] [--repeat 3] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.tools import argv, which  # noqa: E402  (how peers are run)

CHUNK = 1 << 20


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


TIME = shutil.which("time") and Path("/usr/bin/time")


def run_measured(cmd: list[str], *, env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """Run a command; return (elapsed seconds, peak RSS bytes, bytes read from disk) of that command.

    Wrapped in GNU time (``/usr/bin/time -f "%M %I"``) when installed: ``wait4``'s ru_maxrss of a
    child forked from this Python process would include the parent's RSS from before ``exec``.
    """
    stats = Path(f"/tmp/bilge-bench-time.{os.getpid()}")
    wrapped = ["/usr/bin/time", "-f", "%M %I", "-o", str(stats), *cmd] if TIME and TIME.exists() else cmd
    start = time.perf_counter()
    proc = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if code != 0:
        raise SystemExit(f"command failed ({code}): {' '.join(cmd)}\n{err[-2000:]}")
    if wrapped is cmd:
        return elapsed, usage.ru_maxrss * 1024, usage.ru_inblock * 512
    rss_kb, inblocks = stats.read_text().split()[-2:]
    stats.unlink()
    return elapsed, int(rss_kb) * 1024, int(inblocks) * 512


def in_process(fn: Any) -> tuple[float, int, int]:
    """Time a Python function in a forked child (peak RSS: this interpreter plus the function)."""
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    start = time.perf_counter()
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("in-process measurement failed")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_inblock * 512


def gunzip_all(paths: list[Path], module: Any) -> int:
    """Stream-decompress every gzip blob (all members) with zlib-compatible ``module``; return bytes out."""
    total = 0
    for path in paths:
        with open(path, "rb") as fh:
            d = module.decompressobj(31)
            while chunk := fh.read(CHUNK):
                while chunk:
                    total += len(d.decompress(chunk))
                    if d.eof:  # multi-member gzip: start over on what follows
                        chunk = d.unused_data
                        d = module.decompressobj(31)
                    else:
                        chunk = b""
            total += len(d.flush())
    return total


def oci_blobs(oci: Path) -> list[Path]:
    index = json.loads((oci / "index.json").read_text())
    desc = next(
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "latest"
    )
    manifest = json.loads((oci / "blobs" / "sha256" / desc["digest"].split(":", 1)[1]).read_text())
    return [oci / "blobs" / "sha256" / layer["digest"].split(":", 1)[1] for layer in manifest["layers"]]


def warm(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(8 * CHUNK):
                pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work")
    ap.add_argument("--sizes", nargs="+", default=["small", "medium", "large"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before every timed run (root)")
    ap.add_argument("--no-umoci", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default WORK/results[-cold].json)")
    args = ap.parse_args()

    try:
        import isal.isal_zlib as isal_zlib  # type: ignore[import-untyped]
    except ImportError:
        isal_zlib = None

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env["NO_COLOR"] = "1"
    env.pop("CI", None)
    bilge = [sys.executable, "-m", "bilge"]

    def measure(label: str, thunk: Any, paths: list[Path]) -> dict[str, float]:
        times, rss, disk = [], [], []
        for _ in range(args.repeat):
            if args.cold:
                drop_caches()
            else:
                warm(paths)
            t, r, io = thunk()
            times.append(t)
            rss.append(r)
            disk.append(io)
        result = {
            "seconds": statistics.median(times),
            "min_seconds": min(times),
            "peak_rss": max(rss),
            "disk_read_bytes": statistics.median(disk),
        }
        print(
            f"    {label:42} {result['seconds']:8.2f} s  (min {min(times):.2f})  peak RSS {max(rss) / 2**20:7.1f} MiB"
            f"  disk read {result['disk_read_bytes'] / 1e6:8.1f} MB",
            file=sys.stderr,
            flush=True,
        )
        return result

    t_start = run_measured([*bilge, "--version"], env=env)[0]
    report: dict[str, Any] = {
        "machine": {
            "cpu": next(
                (
                    line.split(":", 1)[1].strip()
                    for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")
                ),
                platform.processor(),
            ),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "isal": getattr(sys.modules.get("isal"), "__version__", None) if isal_zlib else None,
            "bilge_commit": subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
            "cache": "cold (drop_caches before every run)" if args.cold else "warm",
            "repeat": args.repeat,
            "bilge_startup_seconds": t_start,
        },
        "images": {},
    }
    for size in args.sizes:
        report["images"][size] = bench_size(args, size, measure, env, bilge, isal_zlib)

    out_path = args.out or args.work / ("results-cold.json" if args.cold else "results.json")
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    print(f"(results: {out_path})", file=sys.stderr)
    return 0


def bench_size(
    args: argparse.Namespace, size: str, measure: Any, env: dict[str, str], bilge: list[str], isal_zlib: Any
) -> dict[str, Any]:
    d = args.work / size
    oci, archive = d / "oci", d / "docker.tar"
    if not oci.is_dir() or not archive.is_file():
        raise SystemExit(f"{d}: missing oci/ or docker.tar (run benchmarks/make_large_image.sh)")
    blobs = oci_blobs(oci)
    oci_files = [p for p in oci.rglob("*") if p.is_file()]
    uncompressed = gunzip_all(blobs, zlib)
    gz = sum(p.stat().st_size for p in blobs)
    print(
        f"== {size}: {len(blobs)} gzip layers, {gz / 1e6:.0f} MB compressed, {uncompressed / 1e6:.0f} MB "
        f"uncompressed; docker.tar {archive.stat().st_size / 1e6:.0f} MB",
        file=sys.stderr,
        flush=True,
    )
    r: dict[str, Any] = {
        "layers": len(blobs),
        "gzip_bytes": gz,
        "uncompressed_bytes": uncompressed,
        "archive_bytes": archive.stat().st_size,
    }
    ref_oci = f"oci:{oci}:latest"
    ref_tar = f"docker-archive:{archive}"
    analyze = [*bilge, "analyze", "--format", "json", "--no-ci"]

    # what bilge reports (also proves the run worked)
    out = subprocess.run([*analyze, ref_oci], capture_output=True, text=True, env=env, check=True).stdout
    summary = json.loads(out)["summary"]
    r["bilge_summary"] = {
        k: summary[k] for k in ("layer_bytes", "visible_bytes", "reclaimable_bytes", "files", "entries")
    }

    r["zlib"] = measure(
        "python zlib decompress (gzip blobs)", lambda: in_process(lambda: gunzip_all(blobs, zlib)), blobs
    )
    if isal_zlib is not None:
        r["isal"] = measure(
            "python isal_zlib decompress (gzip blobs)",
            lambda: in_process(lambda: gunzip_all(blobs, isal_zlib)),
            blobs,
        )
    r["gzip_dc"] = measure(
        "gzip -dc (gzip blobs)", lambda: run_measured([*argv("gzip"), "-dc", *map(str, blobs)]), blobs
    )
    r["bilge_oci"] = measure(
        "bilge analyze oci: (verify)", lambda: run_measured([*analyze, ref_oci], env=env), oci_files
    )
    r["bilge_oci_noverify"] = measure(
        "bilge analyze oci: --no-verify",
        lambda: run_measured([*analyze, "--no-verify", ref_oci], env=env),
        oci_files,
    )
    r["cat_archive"] = measure(
        "cat docker.tar > /dev/null", lambda: run_measured(["cat", str(archive)]), [archive]
    )
    r["bilge_archive"] = measure(
        "bilge analyze docker-archive: (verify)",
        lambda: run_measured([*analyze, ref_tar], env=env),
        [archive],
    )
    r["bilge_archive_noverify"] = measure(
        "bilge analyze docker-archive: --no-verify",
        lambda: run_measured([*analyze, "--no-verify", ref_tar], env=env),
        [archive],
    )
    if not args.no_umoci and which("umoci"):
        bundle = d / "bundle"

        def umoci() -> tuple[float, int, int]:
            shutil.rmtree(bundle, ignore_errors=True)
            try:
                return run_measured([*argv("umoci"), "unpack", "--image", f"{oci}:latest", str(bundle)])
            finally:
                shutil.rmtree(bundle, ignore_errors=True)

        r["umoci_unpack"] = measure("umoci unpack (oci)", umoci, oci_files)

    r["ratios"] = {
        "bilge_oci_vs_zlib": r["zlib"]["seconds"] / r["bilge_oci"]["seconds"],
        "bilge_oci_noverify_vs_zlib": r["zlib"]["seconds"] / r["bilge_oci_noverify"]["seconds"],
        "bilge_oci_vs_gzip_dc": r["gzip_dc"]["seconds"] / r["bilge_oci"]["seconds"],
        "cat_vs_bilge_archive_noverify": r["cat_archive"]["seconds"] / r["bilge_archive_noverify"]["seconds"],
        "cat_vs_bilge_archive": r["cat_archive"]["seconds"] / r["bilge_archive"]["seconds"],
    }
    if "umoci_unpack" in r:
        r["ratios"]["umoci_vs_bilge_oci"] = r["umoci_unpack"]["seconds"] / r["bilge_oci"]["seconds"]
    print(
        "    ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in r["ratios"].items()),
        file=sys.stderr,
        flush=True,
    )
    return r


def markdown(report: dict[str, Any]) -> str:
    """The tables for benchmarks/README.md."""
    mb = 1e6
    lines = [
        f"Machine: {report['machine']['cpu']}, {report['machine']['cpus']} CPUs, Python {report['machine']['python']}, "
        f"isal {report['machine']['isal']}, bilge {report['machine']['bilge_commit']}; page cache "
        f"{report['machine']['cache']}; median of {report['machine']['repeat']} runs; bilge start-up "
        f"(`bilge --version`) {report['machine']['bilge_startup_seconds']:.2f} s.",
        "",
        "| image | layers | files | uncompressed | gzip | zlib | isal | gzip -dc | bilge (verify) | bilge --no-verify | "
        "bilge / zlib | umoci unpack | peak RSS bilge |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def s(r: dict[str, Any], key: str) -> str:
        return f"{r[key]['seconds']:.2f} s" if key in r else "-"

    for size, r in report["images"].items():
        un = r["uncompressed_bytes"]
        lines.append(
            f"| {size} | {r['layers']} | {r['bilge_summary']['files']} | {un / mb:.0f} MB | {r['gzip_bytes'] / mb:.0f} MB | "
            f"{s(r, 'zlib')} ({un / mb / r['zlib']['seconds']:.0f} MB/s) | {s(r, 'isal')} | {s(r, 'gzip_dc')} | "
            f"{s(r, 'bilge_oci')} ({un / mb / r['bilge_oci']['seconds']:.0f} MB/s) | {s(r, 'bilge_oci_noverify')} | "
            f"{r['ratios']['bilge_oci_vs_zlib']:.2f}x | {s(r, 'umoci_unpack')} | "
            f"{max(r['bilge_oci']['peak_rss'], r['bilge_oci_noverify']['peak_rss']) / 2**20:.0f} MiB |"
        )
    lines += [
        "",
        "| image | docker.tar | cat > /dev/null | bilge (verify) | bilge --no-verify | cat / bilge --no-verify | "
        "peak RSS bilge |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, r in report["images"].items():
        lines.append(
            f"| {size} | {r['archive_bytes'] / mb:.0f} MB | {r['cat_archive']['seconds']:.2f} s | "
            f"{r['bilge_archive']['seconds']:.2f} s | {r['bilge_archive_noverify']['seconds']:.2f} s | "
            f"{r['ratios']['cat_vs_bilge_archive_noverify']:.2f}x | "
            f"{max(r['bilge_archive']['peak_rss'], r['bilge_archive_noverify']['peak_rss']) / 2**20:.0f} MiB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
