"""Benchmark: the closure of every ELF file under /usr of an image, bilge vs pax-utils lddtree.

    python benchmarks/deps_bench.py --build                         # build deps-bench:debian (316 packages)
    python benchmarks/deps_bench.py --docker deps-bench:debian      # docker save + umoci unpack it first
    python benchmarks/deps_bench.py --archive img.tar --rootfs DIR  # an image and its unpacked rootfs

Both tools get the same roots (every regular ELF file under --dir, found by a plain walk of the rootfs).
lddtree reads the unpacked rootfs (``lddtree -R ROOTFS``); bilge reads the image archive itself (one pass
over the layers, nothing unpacked) and, for reference, the same rootfs directory (``--rootfs``).
The answers are compared root by root: the set of real files each root loads (symlinks resolved with
``realpath`` run inside the rootfs) and the names each one cannot find.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent))  # tests.tools: how peers are run

from bilge.deps import DirView, closure, image_view  # noqa: E402
from bilge.source import open_image  # noqa: E402
from tests.tools import argv, tool_env, which  # noqa: E402

BENCH_TAG = "deps-bench:debian"
BENCH_DOCKERFILE = """\
FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \\
      build-essential git python3 python3-pip ruby ruby-pg ruby-nokogiri curl openssh-client \\
      postgresql-client imagemagick ghostscript libvips-tools \\
 && rm -rf /var/lib/apt/lists/*
"""


def build_image() -> str:
    """The benchmark image: Debian 12 + 316 packages (1.06 GB), from bilge-base:bookworm."""
    with tempfile.TemporaryDirectory(prefix="deps-bench-ctx-") as ctx:
        Path(ctx, "Dockerfile").write_text(BENCH_DOCKERFILE)
        subprocess.run(["/usr/bin/docker", "build", "-q", "-t", BENCH_TAG, ctx], check=True,
                       env={**os.environ, "DOCKER_BUILDKIT": "1"})
    return BENCH_TAG


def sh(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def unpack(tag: str, work: Path) -> tuple[Path, Path]:
    archive = work / "image.tar"
    sh(["/usr/bin/docker", "save", "-o", str(archive), tag])
    sh([*argv("skopeo"), "copy", "-q", f"docker-archive:{archive}", f"oci:{work / 'oci'}:img"])
    sh([*argv("umoci"), "unpack", "--image", f"{work / 'oci'}:img", str(work / "bundle")])
    return archive, work / "bundle" / "rootfs"


def elf_roots(rootfs: Path, top: str) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(rootfs / top.lstrip("/")):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            with open(p, "rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    found.append("/" + p.relative_to(rootfs).as_posix())
    return sorted(found)


def realpaths(rootfs: Path, paths: set[str]) -> dict[str, str]:
    """Canonical path of each path, resolved by the kernel inside the rootfs (chroot realpath)."""
    out: dict[str, str] = {}
    items = sorted(p for p in paths if p.startswith("/"))
    for i in range(0, len(items), 2000):
        chunk = items[i:i + 2000]
        got = subprocess.run([*argv("chroot"), str(rootfs), "/usr/bin/realpath", "-m", *chunk], capture_output=True,
                             text=True, check=True).stdout.split("\n")
        out.update(zip(chunk, got, strict=False))
    return out


def run_lddtree(rootfs: Path, roots: list[str]) -> tuple[float, dict[str, set[str]], dict[str, set[str]], str]:
    """Per root: real files lddtree lists, and names it reports as not found (None)."""
    t0 = time.perf_counter()
    p = subprocess.run([*argv("lddtree"), "-R", str(rootfs), *roots], capture_output=True, text=True, env=tool_env())
    elapsed = time.perf_counter() - t0
    prefix = str(rootfs)
    files: dict[str, set[str]] = defaultdict(set)
    missing: dict[str, set[str]] = defaultdict(set)
    current = None
    for line in p.stdout.splitlines():
        if not line.startswith(" "):
            head, _, interp = line.partition(" (interpreter => ")
            if not head.startswith(prefix):
                continue
            current = head[len(prefix):]
            files[current].add(current)
            interp = interp.rstrip(")")
            if interp.startswith(prefix):
                files[current].add(interp[len(prefix):])
            continue
        name, _, where = line.strip().partition(" => ")
        if current is None or "circular loop" in where:
            continue
        if where == "None":
            missing[current].add(name)
        else:
            files[current].add(where[len(prefix):])
    return elapsed, files, missing, p.stderr


def loader_lists(rootfs: Path, roots: list[str], loader: str) -> dict[str, set[str] | None]:
    """The referee: what the image's own loader maps for each root (``ld.so --list``, run in a chroot).

    None for a root the loader refuses (static executables, object files)."""
    script = 'for f in "$@"; do echo "== $f"; "$0" --list "$f" 2>&1; echo "rc=$?"; done'
    cmd = [*argv("chroot"), str(rootfs), "/bin/sh", "-c", script, loader, *roots]
    if which("unshare"):  # a /proc for $ORIGIN of executables
        cmd = [*argv("unshare"), "--mount", "--fork", f"--mount-proc={rootfs}/proc", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    result: dict[str, set[str] | None] = {}
    current, paths = None, set()
    for line in out.splitlines():
        if line.startswith("== "):
            current, paths = line[3:], {line[3:]}
        elif line.startswith("rc=") and current is not None:
            result[current] = paths if line == "rc=0" else None
        elif "=>" in line:
            where = line.split("=>", 1)[1].strip().split(" (")[0]
            paths.add(where if where.startswith("/") else "MISSING:" + line.split("=>")[0].strip())
        elif line.strip().startswith("/"):
            paths.add(line.strip().split(" (")[0])
    return result


def bilge_per_root(result) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    files: dict[str, set[str]] = {}
    missing: dict[str, set[str]] = {}
    for root in result.roots:
        tree = result.trees.get(root.canonical, {})
        seen = {root.canonical}
        gone: set[str] = set()
        stack = [root.canonical]
        while stack:
            for e in tree.get(stack.pop(), ()):
                if e.likely:
                    continue
                if e.target is None:
                    gone.add(e.name)
                elif e.target not in seen:
                    seen.add(e.target)
                    stack.append(e.target)
        files[root.canonical], missing[root.canonical] = seen, gone
    return files, missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="store_true", help=f"build {BENCH_TAG} first and use it")
    ap.add_argument("--docker", help="image tag in the local engine (saved and unpacked to a temp dir)")
    ap.add_argument("--archive", help="docker-archive / oci-archive of the image")
    ap.add_argument("--rootfs", help="the same image unpacked (umoci unpack)")
    ap.add_argument("--dir", default="/usr", help="roots: every ELF under this directory (default /usr)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if which("lddtree") is None:
        sys.exit("lddtree (pax-utils) is not installed")
    tmp = None
    if args.build:
        args.docker = build_image()
    if args.docker:
        tmp = tempfile.TemporaryDirectory(prefix="deps-bench-")
        archive, rootfs = unpack(args.docker, Path(tmp.name))
    elif args.archive and args.rootfs:
        archive, rootfs = Path(args.archive), Path(args.rootfs)
    else:
        ap.error("give --docker TAG, or --archive and --rootfs")

    roots = elf_roots(rootfs, args.dir)
    print(f"{len(roots)} ELF files under {args.dir}")

    t0 = time.perf_counter()
    with open_image(str(archive)) as src:
        view, collector = image_view(src)
        t_read = time.perf_counter() - t0
        result = closure(view, paths=[args.dir], strict=True, config=src.image.container_config)
    t_image = time.perf_counter() - t0
    t0 = time.perf_counter()
    dir_result = closure(DirView(rootfs), paths=[args.dir], strict=True)
    t_dir = time.perf_counter() - t0
    print(f"bilge, image archive: {t_image:6.1f} s  (layers read + every ELF parsed: {t_read:.1f} s, "
          f"{collector.elf_files} ELF files in the image)")
    print(f"bilge, rootfs dir:    {t_dir:6.1f} s")

    t_ldd, l_files, l_missing, l_err = run_lddtree(rootfs, roots)
    print(f"lddtree -R rootfs:    {t_ldd:6.1f} s")

    b_files, b_missing = bilge_per_root(result)
    d_files, _ = bilge_per_root(dir_result)
    assert {r.canonical for r in result.roots} == set(roots), "bilge and the walk found different roots"
    everything = set().union(*l_files.values()) if l_files else set()
    canon = realpaths(rootfs, everything)
    same = 0
    diffs = []
    for root in roots:
        theirs = {canon.get(p, p) for p in l_files.get(root, {root})}
        ours = b_files.get(root, {root})
        if ours == theirs and b_missing.get(root, set()) == l_missing.get(root, set()):
            same += 1
        else:
            diffs.append({"root": root, "only_bilge": sorted(ours - theirs), "only_lddtree": sorted(theirs - ours),
                          "missing_bilge": sorted(b_missing.get(root, ())),
                          "missing_lddtree": sorted(l_missing.get(root, ()))})
    dir_same = sum(1 for r in roots if d_files.get(r) == b_files.get(r))
    t0 = time.perf_counter()
    interp = next((r.interpreter for r in result.roots if r.interpreter), "/lib64/ld-linux-x86-64.so.2")
    referee = loader_lists(rootfs, roots, interp)
    t_ref = time.perf_counter() - t0
    ref_canon = realpaths(rootfs, {p for v in referee.values() if v for p in v})
    judged = agree_b = agree_l = 0
    for root in roots:
        ref = referee.get(root)
        if ref is None:
            continue
        judged += 1
        ref_set = {ref_canon.get(p, p) for p in ref}
        if ref_set == b_files.get(root, {root}) | {"MISSING:" + n for n in b_missing.get(root, ())}:
            agree_b += 1
        theirs = {canon.get(p, p) for p in l_files.get(root, {root})} | {"MISSING:" + n for n in l_missing.get(root, ())}
        if ref_set == theirs:
            agree_l += 1
    union_b = set().union(*b_files.values())
    union_l = {canon.get(p, p) for s in l_files.values() for p in s}
    print(f"same answer for {same}/{len(roots)} roots; closure union: bilge {len(union_b)} files, "
          f"lddtree {len(union_l)} files, {'identical' if union_b == union_l else 'DIFFERENT'}")
    print(f"bilge image vs bilge rootfs: same for {dir_same}/{len(roots)} roots")
    print(f"referee, the image's loader (ld.so --list in a chroot, {t_ref:.1f} s) on the {judged} roots it loads: "
          f"agrees with bilge on {agree_b}, with lddtree on {agree_l}")
    for d in diffs[:20]:
        print("  differs:", json.dumps(d))
    print(f"speed-up: {t_ldd / t_image:.1f}x (image archive), {t_ldd / t_dir:.1f}x (rootfs)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "roots": len(roots), "elf_files_in_image": collector.elf_files, "bilge_image_s": round(t_image, 2),
            "bilge_read_s": round(t_read, 2), "bilge_rootfs_s": round(t_dir, 2), "lddtree_s": round(t_ldd, 2),
            "same_roots": same, "differences": diffs, "referee_roots": judged, "referee_agrees_bilge": agree_b,
            "referee_agrees_lddtree": agree_l, "lddtree_stderr": l_err[-2000:],
        }, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0 if agree_b == judged else 1


if __name__ == "__main__":
    sys.exit(main())
