"""The fast tar reader agrees with Python's tarfile and GNU tar on every header format layers use."""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest

from bilge.tarstream import BodyStream, TarFormatError, iter_members
from tests.tools import argv, which

LONG = "very/" * 30 + "long-name-é.txt"


def make(fmt) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        def add(name, data=None, **kw):
            info = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(info, k, v)
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
        add("etc/", type=tarfile.DIRTYPE, mode=0o755)
        add("etc/hosts", b"127.0.0.1 localhost\n", mode=0o644, uid=1000, gid=1000, uname="me", gname="us", mtime=1700000000)
        add(("x" * 80) + "/" + ("y" * 60) + ".txt", b"prefix split")  # needs the ustar prefix field
        add("lnk", type=tarfile.SYMTYPE, linkname="etc/hosts")
        add("hard", type=tarfile.LNKTYPE, linkname="etc/hosts")
        add("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("empty", b"")
        if fmt != tarfile.USTAR_FORMAT:
            add(LONG, b"long", uid=3_000_000)  # long name, large uid
            add("ln2", type=tarfile.SYMTYPE, linkname=LONG)
    return buf.getvalue()


def compare(data: bytes) -> int:
    ours = list(iter_members(io.BytesIO(data)))
    fh = io.BytesIO(data)
    theirs = tarfile.open(fileobj=io.BytesIO(data)).getmembers()
    assert [m.name.rstrip("/") for m in ours] == [t.name for t in theirs]
    for m, t in zip(ours, theirs, strict=True):
        assert (m.size, m.mode, m.uid, m.gid, m.uname, m.gname, int(m.mtime), m.linkname, m.offset_data) == (
            t.size, t.mode, t.uid, t.gid, t.uname, t.gname, int(t.mtime), t.linkname, t.offset_data), m.name
        assert m.type == t.type or (m.type == b"0" and t.type == tarfile.REGTYPE)
        assert (m.devmajor, m.devminor) == (t.devmajor, t.devminor)
        if t.isfile():
            assert BodyStream(fh, m.offset_data, m.size).read() == tarfile.open(fileobj=io.BytesIO(data)).extractfile(t.name).read()
    return len(ours)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_python_tarfile_formats(fmt):
    assert compare(make(fmt)) >= 7


@pytest.mark.skipif(not which("tar"), reason="GNU tar not installed")
@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar", "v7", "oldgnu"])
def test_gnu_tar_formats(tmp_path, fmt):
    root = tmp_path / "root"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "file.txt").write_text("hello\n")
    (root / "dir" / "sub" / ("n" * (90 if fmt in ("v7", "ustar") else 150))).write_bytes(b"\x00\x01" * 700)
    (root / "link").symlink_to("dir/file.txt")
    out = tmp_path / "x.tar"
    names = ["dir", "link"]
    proc = subprocess.run([*argv("tar"), f"--format={fmt}", "-cf", str(out), "-C", str(root), *names],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"tar --format={fmt}: {proc.stderr.strip()}")
    assert compare(out.read_bytes()) >= 4


def test_garbage_and_truncation_are_errors():
    with pytest.raises(TarFormatError, match="checksum|invalid number"):
        list(iter_members(io.BytesIO(b"not a tar header at all".ljust(512, b"x"))))
    data = make(tarfile.PAX_FORMAT)
    with pytest.raises(TarFormatError):
        list(iter_members(io.BytesIO(data[:700])))
    assert list(iter_members(io.BytesIO(b""))) == []  # a zero-length layer has no entries
    assert list(iter_members(io.BytesIO(b"\0" * 10240))) == []


def test_base256_size_field():
    info = tarfile.TarInfo("big")
    info.size = 5
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    block[124:136] = b"\x80" + (5).to_bytes(11, "big")  # GNU base-256 encoding of the size
    block[148:156] = b"        "
    block[148:155] = f"{sum(block):06o}\0".encode()
    data = bytes(block) + b"hello".ljust(512, b"\0") + b"\0" * 1024
    [m] = list(iter_members(io.BytesIO(data)))
    assert m.size == 5 and BodyStream(io.BytesIO(data), m.offset_data, 5).read() == b"hello"


def _pax_member(**records: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("f")
        info.size = 5
        info.pax_headers = dict(records)
        tf.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


@pytest.mark.parametrize("records", [
    {"size": "abc"}, {"size": "-5"}, {"size": "1e3"}, {"size": ""}, {"uid": "root"}, {"gid": "-1"},
    {"mtime": "inf"}, {"mtime": "nan"}, {"mtime": "-inf"}, {"mtime": "1e400"}, {"mtime": "soon"},
])
def test_pax_numbers_that_are_not_numbers_are_errors(records):
    """Issue 16 (4, 5): a PAX size/uid/gid/mtime that is not a (finite, non-negative where it must be)
    number is a format error, never a ValueError traceback or an infinite mtime handed to the writers."""
    with pytest.raises(TarFormatError, match="invalid PAX"):
        list(iter_members(io.BytesIO(_pax_member(**records))))


def test_valid_pax_numbers_are_read():
    [m] = list(iter_members(io.BytesIO(_pax_member(uid="3000000", gid="7", mtime="1700000000.25"))))
    assert (m.uid, m.gid, m.mtime) == (3_000_000, 7, 1700000000.25)
    [m] = list(iter_members(io.BytesIO(_pax_member(mtime="-86400"))))  # before 1970 is a real time
    assert m.mtime == -86400


def _gnu_base256(offset: int, width: int, value: int) -> bytes:
    info = tarfile.TarInfo("neg")
    info.size = 0
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    block[offset:offset + width] = b"\xff" + (value % (1 << (8 * (width - 1)))).to_bytes(width - 1, "big")
    block[148:156] = b"        "
    block[148:155] = f"{sum(block):06o}\0".encode()
    return bytes(block) + b"\0" * 1024


@pytest.mark.parametrize("field,offset,width", [("size", 124, 12), ("uid", 108, 8), ("gid", 116, 8)])
def test_negative_base256_numbers_are_errors(field, offset, width):
    """Issue 16 (9): a negative size used to make the reader walk backwards forever (--no-verify)."""
    with pytest.raises(TarFormatError, match="negative"):
        list(iter_members(io.BytesIO(_gnu_base256(offset, width, -1024))))
