"""Hostile tar headers inside a layer: every command that reads layers fails cleanly (issue 16: 4, 5, 9, 19)."""

from __future__ import annotations

import io
import tarfile

import pytest

from bilge.testing import docker_archive
from tests.hostile.harness import assert_bounded, assert_clean_error, run_bilge


def pax_layer(**records: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ok = tarfile.TarInfo("etc/ok")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        info = tarfile.TarInfo("etc/hostile")
        info.size = 5
        info.pax_headers = dict(records)
        tf.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


def negative_size_layer() -> bytes:
    info = tarfile.TarInfo("neg")
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    block[124:136] = b"\xff" + ((-4096) % (1 << 88)).to_bytes(11, "big")
    block[148:156] = b"        "
    block[148:155] = f"{sum(block):06o}\0".encode()
    return bytes(block) + b"\0" * 1024


CASES = {
    "pax-size-abc": pax_layer(size="abc"),
    "pax-uid-word": pax_layer(uid="root"),
    "pax-gid-negative": pax_layer(gid="-3"),
    "pax-mtime-inf": pax_layer(mtime="inf"),
    "pax-mtime-nan": pax_layer(mtime="nan"),
    "negative-size": negative_size_layer(),
}
COMMANDS = {
    "analyze": ["analyze"],
    "analyze-no-verify": ["analyze", "--no-verify"],
    "secrets": ["secrets"],
    "squash": ["squash"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES)
def test_hostile_header_is_one_error_line(tmp_path, case, command):
    image = tmp_path / "img.tar"
    docker_archive(image, [[("file", "etc/base", b"base")], CASES[case]])
    args = [*COMMANDS[command], f"docker-archive:{image}"]
    out = tmp_path / "out.tar"
    if command == "squash":
        args += ["-o", f"oci-archive:{out}"]
    o = run_bilge(args, tmp_path, timeout=60)
    assert_clean_error(o, contains="layer", max_seconds=20)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["img.tar", "private-tmp"]


def test_root_whiteout_is_reported_not_applied(tmp_path):
    image = tmp_path / "img.tar"
    docker_archive(image, [[("file", "keep", b"k"), ("file", "etc/passwd", b"root:x:0:0")],
                           [("raw", tarfile.TarInfo(".wh."), b"")]])
    o = run_bilge(["analyze", "--format", "json", f"docker-archive:{image}"], tmp_path)
    assert o.code == 0, o.describe()
    assert_bounded(o)
    o = run_bilge(["squash", f"docker-archive:{image}", "-o", f"oci-archive:{tmp_path / 'sq.tar'}"], tmp_path)
    assert o.code == 0, o.describe()
    o = run_bilge(["analyze", "--format", "json", f"oci-archive:{tmp_path / 'sq.tar'}"], tmp_path)
    assert '"files": 2' in o.stdout, o.stdout[:2000]
