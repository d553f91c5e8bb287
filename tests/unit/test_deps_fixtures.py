"""`bilge deps` on a real third-party image: Alpine 3.11 (musl) from the shared fixtures.

Independent side: the layer tar unpacked with Python's tarfile, pax-utils lddtree -R on it, and the
programs run in a chroot holding only the closure bilge names (musl programs run on this x86-64 host).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from bilge.deps import closure, image_view
from bilge.source import open_image
from tests.tools import argv, which

ALPINE = "trivy-alpine-311.tar.gz"


@pytest.fixture(scope="module")
def alpine(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[str, Path]:
    images = request.getfixturevalue("fixture_images")
    archive = images / ALPINE
    if not archive.is_file():
        pytest.skip(f"{ALPINE} not in the shared fixtures")
    rootfs = tmp_path_factory.mktemp("alpine") / "rootfs"
    rootfs.mkdir()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive.read_bytes()))) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as lt:  # type: ignore[arg-type]
                if hasattr(tarfile, "tar_filter"):  # Python >= 3.11.4 (Debian 12 ships 3.11.2)
                    lt.extractall(rootfs, filter="tar")
                else:  # a fixture we trust, extracted into a temporary directory
                    lt.extractall(rootfs)  # noqa: S202
    return str(archive), rootfs


def elf_under(rootfs: Path, dirs: list[str]) -> list[str]:
    out = []
    for d in dirs:
        for p in sorted((rootfs / d).rglob("*")):
            if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF":
                out.append("/" + p.relative_to(rootfs).as_posix())
    return out


def test_alpine_closure_equals_lddtree(alpine: tuple[str, Path]) -> None:
    if which("lddtree") is None:
        pytest.skip("needs pax-utils lddtree")
    ref, rootfs = alpine
    roots = elf_under(rootfs, ["bin", "sbin", "lib", "usr"])
    with open_image(ref) as src:
        view, _ = image_view(src)
        res = closure(view, paths=["/bin", "/sbin", "/lib", "/usr"], strict=True)
    assert not res.missing
    assert {r.canonical for r in res.roots} == set(roots)
    assert {r.flavor for r in res.roots if r.kind == "elf"} == {"musl"}
    # lddtree only searches the program interpreter's directory and ld.so.conf (Alpine has none), so it
    # is a referee for programs only; for shared-object roots it cannot find libc.musl-x86_64.so.1 at all.
    programs = [r.canonical for r in res.roots if r.interpreter]
    assert len(programs) >= 4
    with open_image(ref) as src:
        view, _ = image_view(src)
        res_p = closure(view, binaries=programs, strict=True)
    out = subprocess.run([*argv("lddtree"), "-R", str(rootfs), "-l", *programs], capture_output=True, text=True, check=True)
    theirs = {os.path.realpath(p) for p in out.stdout.split()}  # alpine's links are relative: safe on the host
    ours = {str(rootfs) + f.path for f in res_p.files if f.kind == "file"}
    assert ours == theirs


@pytest.mark.skipif(os.geteuid() != 0 or which("chroot") is None, reason="needs root and chroot")
def test_alpine_programs_run_from_their_closure(alpine: tuple[str, Path], tmp_path: Path) -> None:
    ref, rootfs = alpine
    with open_image(ref) as src:
        view, _ = image_view(src)
        res = closure(view, binaries=["/bin/busybox", "/usr/bin/ssl_client"])
    dest = tmp_path / "closure"
    for f in res.files:
        src_p, dst = rootfs / f.path.lstrip("/"), dest / f.path.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if f.kind == "symlink":
            os.symlink(os.readlink(src_p), dst)
        else:
            shutil.copy2(src_p, dst)
    assert {f.path for f in res.files if f.kind == "file"} == {
        "/bin/busybox", "/usr/bin/ssl_client", "/lib/ld-musl-x86_64.so.1", "/usr/lib/libtls-standalone.so.1.0.0",
        "/lib/libssl.so.1.1", "/lib/libcrypto.so.1.1"}
    chroot = argv("chroot")
    p = subprocess.run([*chroot, str(dest), "/bin/busybox", "echo", "ok"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
    p = subprocess.run([*chroot, str(dest), "/usr/bin/ssl_client"], capture_output=True, text=True)
    assert "Error loading shared library" not in p.stderr and p.returncode != 127, p.stderr
    os.remove(dest / "lib/libcrypto.so.1.1")  # the check can fail: without a library bilge named, it does
    p = subprocess.run([*chroot, str(dest), "/usr/bin/ssl_client"], capture_output=True, text=True)
    assert "Error loading shared library" in p.stderr
