"""bilge slim: keep paths + their library closure + essentials, drop the rest."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bilge.deps import ElfCollector, closure
from bilge.errors import BilgeError
from bilge.rewrite import read_fs, slim
from bilge.sink import Member
from bilge.source import open_image

sys.path.insert(0, str(Path(__file__).parent))
from rewrite_helpers import build_image, visible_tree  # noqa: E402

ALPINE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "images" / "trivy-alpine-311.tar.gz"


def need_alpine() -> str:
    if not ALPINE.is_file():
        pytest.skip("shared fixtures not found")
    return str(ALPINE)


def closure_of(ref: str, **kw):
    with open_image(ref) as src:
        collector = ElfCollector()
        read = read_fs(src, visitors=[collector])
        return closure(collector.view(read.fs), config=src.image.container_config, **kw)


def test_entrypoint_slim_of_alpine_keeps_the_shell_and_its_loader(tmp_path):
    ref = need_alpine()
    before = visible_tree(ref)
    out = f"oci-archive:{tmp_path / 'o.tar'}"
    with open_image(ref) as src:
        res, plan = slim(src, out, [], entrypoint=True)
    after = visible_tree(out)
    assert {"bin/sh", "bin/busybox", "lib/ld-musl-x86_64.so.1", "etc/passwd", "etc/group", "tmp"} <= set(after)
    assert "sbin/apk" not in after and "usr/bin" not in after
    # whatever is kept is exactly as it was
    assert all(after[p] == before[p] for p in after)
    assert after["tmp"][1] == before["tmp"][1] == 0o1777
    # the slimmed image's entrypoint resolves completely in the slimmed image itself
    assert closure_of(out, entrypoint=True).missing == ()
    assert res.details["kept_bytes"] < res.details["visible_bytes"] / 2


def test_keep_a_program_brings_its_libraries(tmp_path):
    ref = need_alpine()
    want = closure_of(ref, binaries=["/sbin/apk"])
    out = f"oci:{tmp_path / 'o'}:x"
    with open_image(ref) as src:
        slim(src, out, ["/sbin/apk"])
    after = visible_tree(out)
    needed = {f.path.lstrip("/") for f in want.files}
    assert needed and needed <= set(after)
    assert {"lib/libcrypto.so.1.1", "lib/libssl.so.1.1", "lib/libz.so.1.2.11"} & set(after)
    assert closure_of(out, binaries=["/sbin/apk"]).missing == ()


def test_dry_run_writes_nothing_and_reports_sizes(tmp_path):
    ref = need_alpine()
    with open_image(ref) as src:
        res, plan = slim(src, f"oci:{tmp_path / 'never'}", ["/etc/apk"], dry_run=True)
    assert res.output is None and not (tmp_path / "never").exists()
    assert 0 < res.details["kept_bytes"] < res.details["visible_bytes"]


def test_kept_directories_symlinks_and_essentials_in_a_generated_image(tmp_path):
    ref = build_image(tmp_path / "in.tar", [
        [(Member("etc", "dir"), None), (Member("etc/passwd", size=5), b"root\n"), (Member("etc/group", size=5),
         b"root\n"), (Member("tmp", "dir", 0o1777), None), (Member("tmp/junk", size=3), b"xyz"),
         (Member("usr", "dir"), None), (Member("usr/share", "dir"), None),
         (Member("usr/share/zoneinfo", "dir"), None), (Member("usr/share/zoneinfo/UTC", size=4), b"TZif"),
         (Member("usr/share/doc", "dir"), None), (Member("usr/share/doc/big", size=1000), b"d" * 1000)],
        [(Member("opt", "dir"), None), (Member("opt/app", "dir", 0o750, 10, 10), None),
         (Member("opt/app/run", "file", 0o755, 10, 10, size=4), b"#!x\n"),
         (Member("opt/app/data", "file", 0o640, 10, 10, size=2), b"ok"),
         (Member("app", "symlink", linkname="opt/app"), None)],
    ])
    before = visible_tree(ref)
    out = f"oci-archive:{tmp_path / 'o.tar'}"
    with open_image(ref) as src:
        slim(src, out, ["/app"])
    after = visible_tree(out)
    assert set(after) == {"app", "opt", "opt/app", "opt/app/run", "opt/app/data", "etc", "etc/passwd",
                          "etc/group", "tmp", "usr", "usr/share", "usr/share/zoneinfo", "usr/share/zoneinfo/UTC"}
    assert all(after[p] == before[p] for p in after)
    with open_image(ref) as src, pytest.raises(BilgeError, match="no such path"):
        slim(src, f"oci:{tmp_path / 'x'}", ["/nope"])
    with open_image(ref) as src, pytest.raises(BilgeError, match="nothing to keep"):
        slim(src, f"oci:{tmp_path / 'x'}", [])
