"""A gzipped ``docker save`` archive: its unpacked copy never stays in $TMPDIR (not even after
SIGTERM/SIGINT mid-copy) and a decompression bomb is refused (issue 16: 15)."""

from __future__ import annotations

import gzip
import os
import tarfile

import pytest
from isal import isal_zlib  # bilge's own dependency: writes gzip of zeros ~30x faster than zlib

from bilge.testing import docker_archive
from tests.hostile.harness import SIGNALS, assert_bounded, assert_clean_error, run_bilge


def _gz_archive(tmp_path, payload: int):
    """A docker-archive, gzipped whole, holding a layer of ``payload`` zero bytes (written streaming)."""
    plain = tmp_path / "plain.tar"
    docker_archive(plain, [[("file", "etc/ok", b"ok"), ("file", "zeros", b"\0" * payload)]])
    out = tmp_path / "img.tar.gz"
    with open(plain, "rb") as src, gzip.open(out, "wb", compresslevel=9) as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    plain.unlink()
    return out


def test_gzipped_archive_leaves_nothing(tmp_path):
    image = _gz_archive(tmp_path, 1 << 20)
    o = run_bilge(["analyze", "--format", "json", f"docker-archive:{image}"], tmp_path)
    assert o.code == 0, o.describe()
    assert_bounded(o)  # includes: nothing left in the private TMPDIR


@pytest.fixture(scope="module")
def big_gz(tmp_path_factory):
    """A gzipped tar of 1.5 GB of zeros (~1.5 MB on disk): seconds of unpacking to interrupt. Written
    with ISA-L at level 1 straight from the tar header, the zeros and the end blocks (fast)."""
    image = tmp_path_factory.mktemp("big-gz") / "big.tar.gz"
    info = tarfile.TarInfo("zeros")
    info.size = 1500 << 20
    comp = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    with open(image, "wb") as fh:
        fh.write(comp.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(info.size >> 20):
            fh.write(comp.compress(zeros))
        fh.write(comp.compress(bytes(2 * tarfile.BLOCKSIZE)))
        fh.write(comp.flush())
    return image


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_during_unpacking_leaves_nothing(tmp_path, big_gz, sig):
    image = big_gz
    tmp = tmp_path / "private-tmp"
    started = []

    def ready() -> bool:  # the unpacked copy exists in the private TMPDIR: unpacking is under way
        if not started:  # (a loaded machine can take seconds to import bilge; don't signal that early)
            started.append(os.times().elapsed)
        return any(tmp.iterdir()) or os.times().elapsed - started[0] > 60

    o = run_bilge(["analyze", f"docker-archive:{image}"], tmp_path, timeout=120, send_signal=(sig, ready))
    assert o.code in (128 + sig, 2), o.describe()  # interrupted (or done: not an image)
    assert o.tmp_left == [] and list(tmp.iterdir()) == [], o.tmp_left
    assert "Traceback" not in o.stderr, o.describe()


def test_decompression_bomb_is_refused(tmp_path):
    # 3 GB of zeros in a small gzip stream (not a valid tar beyond the first block; refused before).
    # One gzip member of ~3 MB: ISA-L writes it in 0.3 s where zlib took 8 s (CI time).
    image = tmp_path / "bomb.tar.gz"
    comp = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    with open(image, "wb") as fh:
        for _ in range(3072):
            fh.write(comp.compress(block))
        fh.write(comp.flush())
    o = run_bilge(["analyze", f"docker-archive:{image}"], tmp_path, timeout=120)
    assert_clean_error(o, contains="decompression bomb", max_seconds=60)
