"""The reproducible layer writer, checked with independent readers (GNU tar, gzip, zstd, hashlib)."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bilge.errors import BilgeError
from bilge.sink.layer import Compression, Member, sorted_members, source_date_epoch, write_layer
from tests.tools import argv, which


def sample() -> list[tuple[Member, bytes | None]]:
    return [
        (Member("etc", "dir", 0o755, mtime=100), None),
        (Member("etc/hello", "file", 0o644, uid=1000, gid=1001, mtime=2_000_000_000, size=5), b"hello"),
        (Member("etc/link", "symlink", 0o777, linkname="hello", mtime=5), None),
        (Member("etc/hard", "hardlink", 0o644, linkname="etc/hello"), None),
        (Member("dev/null", "char", 0o666, devmajor=1, devminor=3), None),
        (Member("run/fifo", "fifo", 0o600), None),
        (Member("tmp", "dir", 0o1777), None),
        (Member("usr/bin/ping", "file", 0o4755, size=3, xattrs=(("security.capability", b"\x01\x00\x00\x02\xff"),)),
         b"elf"),
        (Member("d" * 120 + "/ünïcode-" + "x" * 100, "file", 0o600, size=1 << 20), b"z" * (1 << 20)),
    ]


def write(members, compression=None, clamp=None) -> tuple[bytes, object]:
    out = io.BytesIO()
    blob = write_layer(members, out, compression, clamp=clamp)
    return out.getvalue(), blob


def test_digest_diff_id_and_sizes_match_independent_hashes():
    data, blob = write(sample())
    assert blob.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    raw = gzip.decompress(data)  # stdlib zlib, not ISA-L
    assert blob.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert blob.uncompressed_size == len(raw)
    assert blob.entries == len(sample())
    assert len(raw) % 512 == 0


def test_entries_read_back_exactly_with_tarfile():
    data, _ = write(sample(), Compression("none"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
        by_name = {m.name: m for m in members}
        assert [m.name for m in members] == [m.path for m, _ in sample()]
        hello = by_name["etc/hello"]
        assert (hello.mode, hello.uid, hello.gid, hello.uname, hello.gname) == (0o644, 1000, 1001, "", "")
        assert tf.extractfile(hello).read() == b"hello"
        assert by_name["etc/link"].issym() and by_name["etc/link"].linkname == "hello"
        assert by_name["etc/hard"].islnk() and by_name["etc/hard"].linkname == "etc/hello"
        assert by_name["dev/null"].ischr() and (by_name["dev/null"].devmajor, by_name["dev/null"].devminor) == (1, 3)
        assert by_name["run/fifo"].isfifo()
        assert by_name["tmp"].mode == 0o1777 and by_name["tmp"].isdir()
        ping = by_name["usr/bin/ping"]
        assert ping.mode == 0o4755
        assert ping.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == (
            b"\x01\x00\x00\x02\xff")
        long = [m for m in members if m.name.startswith("ddd")][0]
        assert long.name == "d" * 120 + "/ünïcode-" + "x" * 100
        assert tf.extractfile(long).read() == b"z" * (1 << 20)


@pytest.mark.skipif(not which("tar"), reason="GNU tar not installed")
def test_gnu_tar_lists_the_same_entries(tmp_path):
    data, _ = write(sample(), Compression("gzip", 6))
    (tmp_path / "l.tgz").write_bytes(data)
    out = subprocess.run([*argv("tar"), "--numeric-owner", "-tvzf", str(tmp_path / "l.tgz")], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert len(out) == len(sample())
    assert out[0].startswith("drwxr-xr-x 0/0") and out[0].endswith(" etc/")
    assert out[1].startswith("-rw-r--r-- 1000/1001") and out[1].endswith(" etc/hello")
    assert "etc/link -> hello" in out[2]
    assert "etc/hard link to etc/hello" in out[3]
    assert out[6].startswith("drwxrwxrwt")
    assert out[7].startswith("-rwsr-xr-x")


def test_same_input_same_bytes_for_every_compression():
    for comp in (Compression("gzip", 1), Compression("gzip", 3), Compression("gzip", 9), Compression("zstd"),
                 Compression("zstd", 19), Compression("none")):
        a, blob_a = write(sample(), comp)
        b, blob_b = write(sample(), comp)
        assert a == b and blob_a == blob_b
        assert blob_a.media_type.endswith({"gzip": "+gzip", "zstd": "+zstd", "none": ".tar"}[comp.kind])


@pytest.mark.skipif(not which("zstd"), reason="zstd CLI not installed")
def test_zstd_blob_decompresses_with_the_zstd_cli(tmp_path):
    data, blob = write(sample(), Compression("zstd"))
    (tmp_path / "l.zst").write_bytes(data)
    raw = subprocess.run([*argv("zstd"), "-dc", str(tmp_path / "l.zst")], check=True, capture_output=True).stdout
    assert blob.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_gzip_levels_pick_engine_and_trade_size():
    big = [(Member(f"f{i}", "file", size=20000), ((f"line {i} of some text\n") * 1000)[:20000].encode())
           for i in range(30)]
    sizes = {lvl: write(big, Compression("gzip", lvl))[1].size for lvl in (1, 3, 9)}
    assert sizes[9] < sizes[1]
    assert Compression("gzip", 2).describe() == "gzip -2 (ISA-L)"
    assert Compression("gzip", 7).describe() == "gzip -7 (zlib)"
    assert Compression().describe() == "gzip -3 (ISA-L)"


def test_mtimes_clamped_to_source_date_epoch_only_when_newer():
    data, _ = write(sample(), Compression("none"), clamp=1_000)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        m = {x.name: x.mtime for x in tf.getmembers()}
    assert m["etc"] == 100 and m["etc/link"] == 5
    assert m["etc/hello"] == 1_000  # was 2e9, clamped
    data2, _ = write(sample(), Compression("none"))
    with tarfile.open(fileobj=io.BytesIO(data2)) as tf:
        assert tf.getmember("etc/hello").mtime == 2_000_000_000


def test_source_date_epoch_parsing():
    assert source_date_epoch({}) is None
    assert source_date_epoch({"SOURCE_DATE_EPOCH": "1700000000"}) == 1700000000
    for bad in ("yesterday", "-5", "1.5"):
        with pytest.raises(BilgeError, match="SOURCE_DATE_EPOCH"):
            source_date_epoch({"SOURCE_DATE_EPOCH": bad})


def test_short_body_duplicate_paths_and_bad_levels_are_errors():
    with pytest.raises(BilgeError, match="short"):
        write([(Member("f", size=10), io.BytesIO(b"abc"))])
    with pytest.raises(BilgeError, match="10"):
        write([(Member("f", size=10), b"abc")])
    with pytest.raises(BilgeError, match="no body"):
        write([(Member("f", size=10), None)])
    with pytest.raises(BilgeError, match="twice"):
        write([(Member("a", "dir"), None), (Member("a/", "dir"), None)])
    with pytest.raises(BilgeError, match="between 1 and 9"):
        Compression("gzip", 12)
    with pytest.raises(BilgeError, match="unknown compression"):
        Compression("brotli")
    with pytest.raises(ValueError):
        Member("x", "socket")


def test_body_stream_is_read_in_chunks_not_whole():
    class Chunky(io.RawIOBase):
        def __init__(self, n):
            self.left, self.max_read = n, 0

        def readable(self):
            return True

        def read(self, n=-1):
            assert n > 0, "writer must never read a body whole"
            self.max_read = max(self.max_read, n)
            n = min(n, self.left)
            self.left -= n
            return b"\x00" * n

    body = Chunky(5 << 20)
    _, blob = write([(Member("big", size=5 << 20), body)])
    assert body.max_read <= 1 << 20
    assert blob.uncompressed_size == 512 + (5 << 20) + 1024


def test_sorted_members_puts_parents_first_and_hardlinks_last():
    items = [(Member("b/x", "hardlink", linkname="a"), None), (Member("b/c"), b""), (Member("b", "dir"), None),
             (Member("a"), b""), (Member("b-c"), b"")]
    assert [m.path for m, _ in sorted_members(items)] == ["a", "b", "b/c", "b-c", "b/x"]


names = st.lists(st.text(alphabet="abcé_.-", min_size=1, max_size=12).filter(lambda s: s not in (".", "..")),
                 min_size=1, max_size=3).map("/".join)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(names, st.tuples(st.binary(max_size=700), st.integers(0, 0o7777), st.integers(0, 70000),
                                        st.integers(0, 2**33)), min_size=1, max_size=12))
def test_any_file_set_round_trips(files):
    members = [(Member(p, "file", mode, uid=uid, gid=uid, mtime=mtime, size=len(body)), body)
               for p, (body, mode, uid, mtime) in sorted(files.items())]
    data, blob = write(members)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tf:
        got = {m.name: (tf.extractfile(m).read(), m.mode, m.uid, m.mtime) for m in tf.getmembers()}
    assert got == {p: (b, mode, uid, mtime) for p, (b, mode, uid, mtime) in files.items()}
    assert write(members)[0] == data


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet="abcXYZ/._-é", min_size=1, max_size=140).filter(lambda s: s.strip("/") not in ("", ".", "..")),
    st.sampled_from(["file", "dir", "symlink", "hardlink", "char", "block", "fifo"]),
    st.integers(0, 0o7777), st.integers(0, 3_000_000), st.integers(0, 3_000_000),
    st.integers(0, 2**35), st.integers(0, 2**34), st.text(alphabet="ab/.é", max_size=120),
    st.integers(0, 300), st.integers(0, 300),
)
def test_fast_header_path_is_byte_identical_to_tarfile(name, kind, mode, uid, gid, mtime, size, link, major, minor):
    from bilge.sink.layer import _fast_ustar, _tarfile_header, tar_header

    m = Member(name, kind, mode, uid, gid, mtime, size if kind == "file" else 0,
               link if kind in ("symlink", "hardlink") else "", major, minor)
    path = name.strip("/")
    full = path + "/" if kind == "dir" else path
    fast = _fast_ustar(full, m, mtime)
    assert tar_header(m) == _tarfile_header(path, m, mtime)
    if fast is not None:
        assert fast == _tarfile_header(path, m, mtime)


@pytest.mark.parametrize("comp", [Compression("gzip", 3), Compression("gzip", 1), Compression("zstd", 3)])
def test_bytes_do_not_depend_on_the_number_of_compression_threads(monkeypatch, comp):
    import os as _os

    from bilge.sink import layer as layer_mod

    members = [(Member(f"f{i}", size=300_000), _os.urandom(100_000) * 3) for i in range(12)]
    outs = []
    for n in (1, 2, 4):
        monkeypatch.setattr(layer_mod, "compression_threads", lambda n=n: n)
        outs.append(write(members, comp))
    assert outs[0] == outs[1] == outs[2]
