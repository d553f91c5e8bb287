#!/usr/bin/env python3
"""Benchmark `bilge squash` against docker-squash on the same large image, side by side.

Builds (once; the engine caches it) an image on ``bilge-base:bookworm`` with ≥ 1 GB of layer data,
≥ 20 000 files and ~40 % dead weight (files written in one RUN and deleted in a later one), saves it
with ``docker save``, then measures on the same machine, one after the other:

- ``bilge squash`` of the saved archive to ``oci-archive`` (gzip -3 via ISA-L, the default), to
  ``docker-archive`` (gzip) and with ``--compression zstd``: wall time, output bytes, peak RSS;
- ``docker-squash`` (PyPI) of the same image in the daemon, ``--output-path`` (no load): wall time,
  output bytes, peak RSS;
- the compressor alone: ISA-L level 3 (and zstd -3) compressing the squashed layer's uncompressed
  tar, to compare bilge's throughput with the compressor's own.

Usage:  PYTHONPATH=src python benchmarks/squash_bench.py [--docker-squash PATH] [--workdir DIR] [--json OUT]
The Docker engine must be running; docker-squash is looked up on PATH, then in /opt/docker-squash-venv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.tools import which  # noqa: E402  (how peers are run)

DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"
TAG = "bilge-bench-squash:1"
DOCKERFILE = """\
FROM bilge-base:bookworm
RUN mkdir /data && for i in 1 2 3 4 5 6 7 8; do cp -a /usr /data/u$i; done
RUN head -c 300000000 /dev/urandom > /data/random.bin && seq 1 20000000 > /data/numbers.txt
RUN rm -rf /data/u1 /data/u2 /data/u3 /data/random.bin
RUN cp -a /usr/lib /data/lib9 && sed -i s/1/2/ /data/numbers.txt
CMD ["ls", "/data"]
"""


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Run cmd under /usr/bin/time; return (seconds, peak RSS of the command in bytes, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    rss = [line for line in proc.stderr.splitlines() if line.startswith("MAXRSS ")]
    return dt, int(rss[-1].split()[1]) * 1024 if rss else 0, proc.stdout


def build(workdir: Path) -> Path:
    ctx = workdir / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    print("building the benchmark image (cached after the first run) ...", file=sys.stderr)
    sh([DOCKER, "build", "-t", TAG, str(ctx)], env={**os.environ, "DOCKER_BUILDKIT": "0"})
    archive = workdir / "input.tar"
    image_id = sh([DOCKER, "image", "inspect", "-f", "{{.Id}}", TAG]).stdout.strip()
    stamp = workdir / "input.id"
    if not archive.exists() or not stamp.exists() or stamp.read_text() != image_id:
        sh([DOCKER, "save", "-o", str(archive), TAG])
        stamp.write_text(image_id)
    return archive


def docker_squash_path(explicit: str | None) -> str | None:
    for cand in (explicit, which("docker-squash")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def compressor_alone(layer_tar: Path) -> dict[str, float]:
    """MB/s of ISA-L level 3 and zstd -3 on the squashed layer's tar, read from page cache."""
    import zstandard
    from isal import isal_zlib

    out: dict[str, float] = {}
    size = layer_tar.stat().st_size
    for name, make in (("isal-3", lambda: isal_zlib.compressobj(3, isal_zlib.DEFLATED, 31)),
                       ("zstd-3", lambda: zstandard.ZstdCompressor(level=3).compressobj())):
        comp = make()
        t0 = time.perf_counter()
        with layer_tar.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                comp.compress(chunk)
                hashlib.sha256(chunk)  # bilge hashes the tar too (the diff_id): count it here as well
        comp.flush()
        out[name] = size / (time.perf_counter() - t0) / 1e6
    return out


def writer_alone(layer_tar: Path) -> dict[str, float]:
    """MB/s of bilge's layer writer (tar framing, diff_id, compression workers, digest) on one body."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from bilge.sink.layer import Compression, Member, write_layer

    class Null:
        def write(self, data: bytes) -> None:
            pass

    size = layer_tar.stat().st_size
    out: dict[str, float] = {}
    for comp in (Compression("gzip", 3), Compression("zstd", 3), Compression("none")):
        with layer_tar.open("rb") as fh:
            t0 = time.perf_counter()
            write_layer([(Member("body", size=size), fh)], Null(), comp)  # type: ignore[arg-type]
            out[comp.describe()] = size / (time.perf_counter() - t0) / 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docker-squash", help="docker-squash executable")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bilge-squash-bench"))
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    archive = build(work)
    src_dir = Path(__file__).resolve().parents[1] / "src"
    env = {"PYTHONPATH": str(src_dir)}
    results: dict[str, dict] = {}

    analysis = json.loads(timed([sys.executable, "-m", "bilge", "analyze", str(archive), "-f", "json"], env)[2])
    summary = analysis["summary"]
    results["input"] = {"archive_bytes": archive.stat().st_size, "layers": len(analysis["layers"]),
                        "layer_bytes": summary["layer_bytes"], "reclaimable_bytes": summary["reclaimable_bytes"],
                        "files": summary["files"]}

    runs = [
        ("bilge oci-archive gzip-3", ["-o", f"oci-archive:{work / 'bilge-oci.tar'}"], work / "bilge-oci.tar"),
        ("bilge docker-archive gzip-3", ["-o", f"docker-archive:{work / 'bilge-docker.tar'}:bench:sq"],
         work / "bilge-docker.tar"),
        ("bilge oci-archive zstd-3", ["-o", f"oci-archive:{work / 'bilge-zstd.tar'}", "--compression", "zstd"],
         work / "bilge-zstd.tar"),
    ]
    for name, extra, out in runs:
        out.unlink(missing_ok=True)
        sh(["sync"])
        dt, rss, stdout = timed([sys.executable, "-m", "bilge", "squash", str(archive), *extra, "-f", "json"], env)
        rep = json.loads(stdout)
        results[name] = {"seconds": round(dt, 2), "output_bytes": out.stat().st_size, "peak_rss_bytes": rss,
                         "bytes_saved": rep["bytes_saved"], "layer_blob_bytes": rep["output_bytes"]}
        print(f"{name}: {dt:.1f}s, {out.stat().st_size / 1e6:.1f} MB", file=sys.stderr)

    # the squashed layer, uncompressed, for the compressor-alone measurement
    raw = work / "squashed-layer.tar"
    out_dir = work / "bilge-plain"
    shutil.rmtree(out_dir, ignore_errors=True)
    timed([sys.executable, "-m", "bilge", "squash", str(archive), "-o", f"oci:{out_dir}", "--compression", "none",
           "-q"], env)
    idx = json.loads((out_dir / "index.json").read_text())
    man = json.loads((out_dir / "blobs/sha256" / idx["manifests"][0]["digest"][7:]).read_text())
    shutil.copyfile(out_dir / "blobs/sha256" / man["layers"][-1]["digest"][7:], raw)
    results["compressor alone (MB/s of uncompressed tar)"] = compressor_alone(raw)
    results["bilge layer writer alone (MB/s of uncompressed tar)"] = writer_alone(raw)
    layer_mb = raw.stat().st_size / 1e6
    results["squashed layer"] = {"uncompressed_bytes": raw.stat().st_size}
    for name in ("bilge oci-archive gzip-3", "bilge oci-archive zstd-3"):
        results[name]["end_to_end_MBps_of_squashed_tar"] = round(layer_mb / results[name]["seconds"], 1)

    ds = docker_squash_path(args.docker_squash)
    if ds:
        out = work / "docker-squash.tar"
        out.unlink(missing_ok=True)
        sh(["sync"])
        dt, rss, _ = timed([ds, "--output-path", str(out), "--load-image", "false", "-t", "bench:dsq", TAG])
        results["docker-squash"] = {"seconds": round(dt, 2), "output_bytes": out.stat().st_size, "peak_rss_bytes": rss}
        print(f"docker-squash: {dt:.1f}s, {out.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    else:
        results["docker-squash"] = {"skipped": "docker-squash not found"}

    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
