"""`broad-copy-from` with --image on engine-built images: the needed part of `COPY --from=builder /usr/lib /usr/lib`.

A builder stage FROM bilge-base:bookworm apt-installs curl; the final stage (bilge-base:bookworm, or scratch with
just the loader's symlinks) copies the builder's whole /usr/lib and /usr/bin/curl, ENTRYPOINT curl.

Independent measurement of "needed": pax-utils ``lddtree -R`` on the ``umoci unpack``-ed rootfs, for the
entrypoint and every ELF file outside /usr/lib found by walking that rootfs, real paths taken in a chroot;
intersected with the regular files the COPY layer holds, read with tarfile from the ``docker save`` archive.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import docker_rmi, require_tool, run
from tests.integration.test_lint_image import SavedImage, bilge_lint, by_rule
from tests.tools import argv

BUILDER = """\
FROM bilge-base:bookworm AS builder
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /links/usr/lib64 && ln -s usr/lib /links/lib && ln -s usr/lib64 /links/lib64 \\
 && ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 /links/usr/lib64/ld-linux-x86-64.so.2

"""
FINAL = {
    # line 7 is the broad COPY in both
    "bookworm": BUILDER + """\
FROM bilge-base:bookworm
COPY --from=builder /usr/lib /usr/lib
COPY --from=builder /usr/bin/curl /usr/bin/curl
ENTRYPOINT ["curl"]
""",
    "scratch": BUILDER + """\
FROM scratch
COPY --from=builder /usr/lib /usr/lib
COPY --from=builder /links/ /
COPY --from=builder /usr/bin/curl /usr/bin/curl
ENV PATH=/usr/bin
ENTRYPOINT ["curl"]
""",
}
COPY_LINE = 7


@pytest.fixture(scope="module", params=sorted(FINAL))
def case(request, built_image, docker_engine, tmp_path_factory):
    ctx = tmp_path_factory.mktemp(f"lint-needed-{request.param}")
    (ctx / "Dockerfile").write_text(FINAL[request.param])
    (ctx / ".dockerignore").write_text("*\n")
    img = built_image(ctx, f"lint2-needed-{request.param}")
    try:
        work = tmp_path_factory.mktemp(f"lint-needed-unpack-{request.param}")
        # gzip level 1: the layout exists only for umoci to unpack (faster than skopeo's default level)
        docker_engine.skopeo_copy(f"docker-archive:{img.archive}", f"oci:{work / 'oci'}:img", "--dest-compress-level", "1")
        rootfs = docker_engine.umoci_unpack(work / "oci", "img", work / "bundle")
        _code, out = bilge_lint("Dockerfile", "--image", str(img.archive), cwd=ctx)
        yield request.param, out, SavedImage(img.archive), rootfs, img
    finally:
        docker_rmi(img.tag)


def elf_outside(rootfs: Path, skip: str) -> list[str]:
    """Every regular ELF file of the rootfs not under ``skip`` (a plain walk, symlinks not followed)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        rel = Path(dirpath).relative_to(rootfs).as_posix()
        if rel == skip or rel.startswith(skip + "/"):
            dirnames[:] = []
            continue
        for name in filenames:
            p = Path(dirpath) / name
            if not p.is_symlink() and p.is_file():
                with p.open("rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        found.append("/" + p.relative_to(rootfs).as_posix())
    return sorted(found)


def real_path(rootfs: Path, path: str) -> str:
    """``path`` with every symlink followed inside ``rootfs`` (absolute targets are relative to it)."""
    parts = [p for p in path.split("/") if p]
    cur: list[str] = []
    hops = 0
    while parts:
        comp = parts.pop(0)
        if comp == "..":
            cur = cur[:-1]
            continue
        here = rootfs.joinpath(*cur, comp)
        if here.is_symlink():
            hops += 1
            assert hops < 40, path
            target = os.readlink(here)
            if target.startswith("/"):
                cur = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        assert here.exists(), path
        cur.append(comp)
    return "/" + "/".join(cur)


def lddtree_real_files(rootfs: Path, programs: list[str]) -> set[str]:
    out = run([*argv("lddtree"), "-R", str(rootfs), "-l", *programs])
    return {real_path(rootfs, p[len(str(rootfs)):]) for p in out.split()}


def test_needed_equals_lddtree_within_the_copy(case):
    name, out, saved, rootfs, _img = case
    require_tool("lddtree")
    f = by_rule(out, "broad-copy-from", COPY_LINE)
    d = f["details"]
    programs = elf_outside(rootfs, "usr/lib")
    assert "/usr/bin/curl" in programs
    assert d["deps_roots"]["programs"] == len(programs)
    closure = lddtree_real_files(rootfs, programs)
    layer = saved.layer_of("/usr/lib /usr/lib")
    written = {p for p, (kind, _size) in saved.layers[layer].items() if kind == "file"}
    later = {p for entries in saved.layers[layer + 1:] for p in entries}
    expected = sorted(p for p in closure if p.lstrip("/") in written and p.lstrip("/") not in later)
    assert expected and d["needed_paths"] == expected
    sizes = {p: saved.layers[layer][p.lstrip("/")][1] for p in expected}
    assert d["needed_files"] == len(expected) and d["needed_bytes"] == sum(sizes.values())
    assert f["bytes"] == saved.file_bytes(layer) > d["needed_bytes"] > 0
    assert d["deps_missing"] == []
    assert any(p.endswith("/libcurl.so.4.8.0") for p in d["needed_paths"])
    assert d["deps_command"].endswith("--format dockerfile --from builder")
    assert f"in {len(expected)} files of it needed by the Entrypoint/Cmd" in f["message"]
    if name == "scratch":
        assert d["deps_roots"]["paths"] == ["/usr/bin"] and d["needed_already_bytes"] == 0
    else:  # the base image's own programs need libraries the base already had
        base_files = {p for entries in saved.layers[:layer] for p, (kind, _s) in entries.items() if kind == "file"}
        already = sum(size for p, size in sizes.items() if p.lstrip("/") in base_files)
        assert d["needed_already_bytes"] == already > 0


def test_the_printed_command_gives_the_same_closure(case):
    """`bilge deps` run as printed (JSON instead of dockerfile) needs the same files of the copy."""
    import json
    import shlex
    import sys

    _name, out, saved, _rootfs, img = case
    d = by_rule(out, "broad-copy-from", COPY_LINE)["details"]
    args = shlex.split(d["deps_command"])
    assert args[:3] == ["bilge", "deps", str(img.archive)]
    cut = args.index("--format")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run([sys.executable, "-m", "bilge", "deps", *args[2:cut], "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    deps = json.loads(proc.stdout)
    layer = saved.layer_of("/usr/lib /usr/lib")
    written = {p for p, (kind, _s) in saved.layers[layer].items() if kind == "file"}
    mine = sorted(x["path"] for x in deps["files"]
                  if x["kind"] == "file" and x["role"] != "likely" and x["path"].lstrip("/") in written)
    assert mine == d["needed_paths"]


def test_the_image_runs(case):
    """Both variants are working images (the scratch one's loader links are right): their closures are meaningful."""
    from tests.integration.conftest import DOCKER

    _name, _out, _saved, _rootfs, img = case
    assert run([DOCKER, "run", "--rm", img.tag, "--version"]).startswith("curl ")
