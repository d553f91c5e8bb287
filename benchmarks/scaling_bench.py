"""Scaling of the inputs an attacker controls (issue 16): time and peak memory against input size.

    .venv/bin/python benchmarks/scaling_bench.py [--quick]

For each workload it builds inputs of size n, 2n, 4n (8n without --quick), runs bilge on each under
/usr/bin/time (peak RSS) and prints seconds, MiB and the time
ratio to the previous size: ~2 for linear growth, ~4 for quadratic. The baseline for each row is the
same command on the smallest input, measured in the same run.

- lint-lines: a Dockerfile of n RUN lines that each create and remove files and install packages
  (the cleanup-later-layer and toolchain rules' worst case), with a parse error on its last line too.
- lint-stages: n chained stages (FROM s(i) AS s(i+1) + RUN).
- secrets-matches: one .env with n GitHub token lines (n matches in one file), --format json.
- deps-etc: n files of 256 KiB under /etc (gzip layer) and one binary, deps --binary.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bilge.testing import docker_archive  # noqa: E402
from tests.hostile.elfs import elf  # noqa: E402


def run(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """Seconds, peak RSS (MiB, from /usr/bin/time: a child forked from this process would start from
    this process's RSS) and exit code of ``python -m bilge ARGS``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    rss_file = cwd / ".rss"
    t0 = time.monotonic()
    with open(os.devnull, "wb") as null:
        code = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), sys.executable, "-m", "bilge",
                                *args], cwd=cwd, env=env, stdout=null, stderr=null)
    seconds = time.monotonic() - t0
    rss = int(rss_file.read_text().strip().splitlines()[-1]) / 1024
    return seconds, rss, code


def lint_lines(work: Path, n: int) -> list[str]:
    p = work / f"lines{n}.Dockerfile"
    p.write_text("FROM debian\n" + "".join(
        f"RUN echo {i} > /tmp/f{i} && apt-get install -y gcc pkg{i} && rm -rf /tmp/f{i - 1}\n" for i in range(n)))
    return ["lint", "--format", "json", str(p)]


def lint_parse_error(work: Path, n: int) -> list[str]:
    p = work / f"err{n}.Dockerfile"
    p.write_text("FROM scratch\n" + "RUN true\n" * n + "RUN <<EOF\nx\n")
    return ["lint", str(p)]


def lint_stages(work: Path, n: int) -> list[str]:
    p = work / f"stages{n}.Dockerfile"
    p.write_text("FROM debian AS s0\n" + "".join(f"FROM s{i} AS s{i + 1}\nRUN echo {i} > /tmp/f{i}\n" for i in range(n)))
    return ["lint", "--format", "json", str(p)]


def secrets_matches(work: Path, n: int) -> list[str]:
    image = work / f"env{n}.tar"
    docker_archive(image, [[("file", "app/.env", "".join(f"GITHUB_TOKEN=ghp_{i:036d}\n" for i in range(n)).encode())]])
    return ["secrets", "--format", "json", "-o", str(work / "report.json"), f"docker-archive:{image}"]


def deps_etc(work: Path, n: int) -> list[str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, data in (("lib64/ld-linux-x86-64.so.2", elf([])), ("lib/libc.so.6", elf([])),
                           ("app", elf(["libc.so.6"]))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        blob = b"x" * (256 << 10)
        for i in range(n):
            info = tarfile.TarInfo(f"etc/junk/f{i}.conf")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    layer = raw.getvalue()
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    image = work / f"etc{n}.tar"
    with tarfile.open(image, "w") as tf:
        for name, data in (("l/layer.tar", gzip.compress(layer, 1)), ("c.json", cfg), ("manifest.json", json.dumps(
                [{"Config": "c.json", "RepoTags": ["t:1"], "Layers": ["l/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return ["deps", "--format", "json", f"docker-archive:{image}", "--binary", "/app"]


WORKLOADS = [("lint-lines", lint_lines, 1000), ("lint-parse-error", lint_parse_error, 2500),
             ("lint-stages", lint_stages, 400), ("secrets-matches", secrets_matches, 5000),
             ("deps-etc", deps_etc, 500)]


def main() -> None:
    steps = [1, 2, 4] if "--quick" in sys.argv else [1, 2, 4, 8]
    print("| workload | n | seconds | ratio to previous | peak RSS MiB | exit |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bilge-scaling-") as tmp:
        work = Path(tmp)
        for name, build, base in WORKLOADS:
            prev = None
            for k in steps:
                n = base * k
                args = build(work, n)
                secs, rss, code = run(args, work)
                ratio = f"{secs / prev:.2f}" if prev else "-"
                print(f"| {name} | {n} | {secs:.1f} | {ratio} | {rss:.0f} | {code} |", flush=True)
                prev = secs


if __name__ == "__main__":
    main()
