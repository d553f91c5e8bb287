#!/usr/bin/env python3
"""Benchmark `bilge secrets` against plain decompression of the same layers, in one run.

usage: python3 benchmarks/secrets_bench.py IMAGE [IMAGE ...] [--repeat 3] [--json]

IMAGE is any bilge reference (``oci:DIR[:TAG]``, ``oci-archive:PATH``, ``docker-archive:PATH`` or a
path). For each image, every mode runs in its own child process (``/usr/bin/time`` gives its peak
RSS); the time is measured inside the child around the work only (interpreter start-up excluded);
each figure is the median of ``--repeat`` runs. Modes:

- ``decompress``: stream every layer blob through ISA-L (``isal_zlib``, gzip), ``zstandard`` (zstd)
  or a plain read (uncompressed), 1 MiB at a time, counting the uncompressed bytes -- the floor
  any reader of the layers pays;
- ``walk``: ``bilge.fs.walk_image`` with no visitor (tar parsing, digest verification, the merged
  filesystem -- what every bilge analysis pays);
- ``secrets``: ``bilge.secrets.scan_source`` (history, config and every file of every layer);
- ``walk-noverify``, ``secrets-noverify``: the same with ``--no-verify`` (no sha256 of blobs and diff_ids);
- ``secrets-noaccel``: ``secrets`` without the optional ``ahocorasick_rs`` keyword pre-filter.

Throughput is uncompressed layer bytes per (wall-clock) second. The figure the issue asks for is
``secrets / decompress`` throughput (>= 0.5 wanted). CPU seconds (user + system, every thread of the
child) are reported too: on a shared, loaded machine they are the steadier comparison.
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
CHUNK = 1 << 20
MODES = ("decompress", "walk", "secrets", "walk-noverify", "secrets-noverify", "secrets-noaccel")


def _decompress(ref: str) -> int:
    import zstandard
    from isal import isal_zlib

    from bilge.source import open_image

    total = 0
    with open_image(ref, verify=False) as src:
        for layer in src.image.layers:
            with src.open_blob(layer.digest) as blob:
                head = blob.read(4)
                if head[:2] == b"\x1f\x8b":
                    d = isal_zlib.decompressobj(31)
                    data = head
                    while True:
                        total += len(d.decompress(data))
                        if d.eof and d.unused_data:  # multi-member gzip (eStargz)
                            rest = d.unused_data
                            d = isal_zlib.decompressobj(31)
                            data = rest
                            continue
                        data = blob.read(CHUNK)
                        if not data:
                            break
                    total += len(d.flush())
                elif head == b"\x28\xb5\x2f\xfd":
                    reader = zstandard.ZstdDecompressor().stream_reader(_Prefixed(head, blob), read_across_frames=True)
                    while chunk := reader.read(CHUNK):
                        total += len(chunk)
                else:
                    total += len(head)
                    while chunk := blob.read(CHUNK):
                        total += len(chunk)
    return total


class _Prefixed:
    def __init__(self, head: bytes, raw) -> None:
        self.head, self.raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self.head:
            data, self.head = self.head, b""
            return data + (self.raw.read(n - len(data)) if n and n > len(data) else b"")
        return self.raw.read(n)


def _walk(ref: str, verify: bool = True) -> int:
    from bilge.fs import walk_image
    from bilge.source import open_image

    with open_image(ref, verify=verify) as src:
        fs = walk_image(src)
    return sum(1 for _ in fs.all_versions())


def _secrets(ref: str, accelerated: bool, verify: bool = True) -> dict:
    from bilge.secrets import scan_source, textscan
    from bilge.source import open_image

    if not accelerated:
        textscan._ac = None
    with open_image(ref, verify=verify) as src:
        findings, stats = scan_source(src)
    return {"findings": len(findings), "scanned_bytes": stats.scanned.bytes, "scanned_files": stats.scanned.files,
            "binary_bytes": stats.binary.bytes, "archive_bytes": stats.archives.bytes,
            "accelerated": textscan._ac is not None}


def _cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return ru.ru_utime + ru.ru_stime


def child(mode: str, ref: str, out: str) -> None:
    sys.path.insert(0, str(REPO / "src"))
    cpu0 = _cpu()
    start = time.perf_counter()
    extra: dict = {}
    if mode == "decompress":
        extra["uncompressed"] = _decompress(ref)
    elif mode == "walk":
        extra["versions"] = _walk(ref)
    elif mode == "secrets":
        extra = _secrets(ref, True)
    elif mode == "secrets-noaccel":
        extra = _secrets(ref, False)
    elif mode == "walk-noverify":
        extra["versions"] = _walk(ref, verify=False)
    elif mode == "secrets-noverify":
        extra = _secrets(ref, True, verify=False)
    elapsed = time.perf_counter() - start
    Path(out).write_text(json.dumps({"seconds": elapsed, "cpu_seconds": _cpu() - cpu0, **extra}))


def measure(mode: str, ref: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out, tfile = Path(tmp) / "out.json", Path(tmp) / "time.txt"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, ref, str(out)]
        if Path("/usr/bin/time").exists():
            cmd = ["/usr/bin/time", "-f", "%M", "-o", str(tfile), *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        if proc.returncode != 0:
            raise SystemExit(f"{mode} failed on {ref}:\n{proc.stderr[-3000:]}")
        result = json.loads(out.read_text())
        if tfile.exists():
            result["peak_rss"] = int(tfile.read_text().split()[-1]) * 1024
        return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(*sys.argv[i + 1:i + 4])
        return
    args = ap.parse_args()
    report = []
    for ref in args.images:
        runs: dict[str, list[dict]] = {m: [] for m in args.modes}
        for _ in range(args.repeat):  # interleaved, so that machine noise hits every mode alike
            for mode in args.modes:
                runs[mode].append(measure(mode, ref))
        size = next((r["uncompressed"] for r in runs.get("decompress", []) if "uncompressed" in r), None)
        row: dict = {"image": ref, "uncompressed_bytes": size, "repeat": args.repeat, "modes": {}}
        for mode, results in runs.items():
            secs = statistics.median(r["seconds"] for r in results)
            cpu = statistics.median(r["cpu_seconds"] for r in results)
            entry = {"seconds": round(secs, 3), "cpu_seconds": round(cpu, 3),
                     "peak_rss_mb": round(max(r.get("peak_rss", 0) for r in results) / 1e6, 1),
                     "runs": [round(r["seconds"], 3) for r in results]}
            if size:
                entry["mb_per_s"] = round(size / secs / 1e6, 1)
            entry.update({k: v for k, v in results[0].items() if k not in ("seconds", "cpu_seconds", "peak_rss")})
            row["modes"][mode] = entry
        if "decompress" in row["modes"]:
            base = row["modes"]["decompress"]
            for mode in row["modes"]:
                row["modes"][mode]["vs_decompress"] = round(base["seconds"] / row["modes"][mode]["seconds"], 2)
                row["modes"][mode]["vs_decompress_cpu"] = round(base["cpu_seconds"] / row["modes"][mode]["cpu_seconds"], 2)
        report.append(row)
        if not args.json:
            print(f"{ref}: {size / 1e6:.0f} MB uncompressed layer bytes" if size else ref)
            for mode, e in row["modes"].items():
                rate = f"{e['mb_per_s']:7.1f} MB/s" if "mb_per_s" in e else ""
                ratio = (f"  {e['vs_decompress']:.2f}x (CPU {e['vs_decompress_cpu']:.2f}x) decompression throughput"
                         if "vs_decompress" in e else "")
                print(f"  {mode:16} {e['seconds']:7.2f} s wall {e['cpu_seconds']:7.2f} s CPU {rate}  "
                      f"peak RSS {e['peak_rss_mb']:6.1f} MB{ratio}")
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
