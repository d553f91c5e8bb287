"""Layer streaming: bodies shared by several visitors, large bodies, verification counters."""

from __future__ import annotations

import io
import os

import pytest

from bilge import body, layers, rawio
from bilge.fs import walk_image
from bilge.layers import ForwardStream, normalize
from bilge.source import open_image
from bilge.testing import docker_archive


def test_every_visitor_reads_the_whole_body(tmp_path):
    path = tmp_path / "img.tar"
    data = os.urandom(300_000)
    docker_archive(path, [[("file", "blob.bin", data), ("file", "small", b"abc")]], compression="gzip")
    seen = []

    def sniff(_layer, entry):
        if entry.type == "file":
            seen.append(("head", entry.path, entry.read(4)))

    def full(_layer, entry):
        if entry.type == "file":
            fh = entry.fileobj
            seen.append(("full", entry.path, fh.read()))
            fh.seek(10)
            seen.append(("seek", entry.path, fh.read(5)))

    with open_image(str(path)) as src:
        walk_image(src, [sniff, full, sniff])
    assert ("head", "blob.bin", data[:4]) in seen and ("full", "blob.bin", data) in seen
    assert ("seek", "blob.bin", data[10:15]) in seen and ("full", "small", b"abc") in seen


def test_large_body_keeps_its_head_for_everyone(tmp_path, monkeypatch):
    monkeypatch.setattr(body, "FULL_CACHE_LIMIT", 100_000)
    monkeypatch.setattr(body, "HEAD_CACHE", 10_000)
    path = tmp_path / "img.tar"
    data = os.urandom(1_000_000)
    docker_archive(path, [[("file", "big", data)]])
    got = {}

    def visitor(_layer, entry):
        got["head"] = entry.read(16)
        reader = entry.fileobj
        chunks = []
        while chunk := reader.read(65536):
            chunks.append(chunk)
        got["all"] = b"".join(chunks)
        got["head_again"] = entry.read(16)
        reader.seek(50_000)
        with pytest.raises(RuntimeError):
            reader.read(10)

    with open_image(str(path)) as src:
        walk_image(src, [visitor])
    assert got["head"] == got["head_again"] == data[:16] and got["all"] == data


@pytest.mark.parametrize("size", [3 * layers.CHUNK + 777, 70 << 20], ids=["cached-whole", "head-and-window"])
def test_skim_reads_forward_without_keeping_and_leaves_the_head(tmp_path, size):
    """Entry.skim (the last reader of a body): bytes from the cache or the stream, what lies between is
    passed over; afterwards the cached head is still readable, bytes beyond it are refused, as is
    skimming back; the next entry is intact."""
    path = tmp_path / "img.tar"
    data = os.urandom(1 << 16) * (size >> 16) + os.urandom(size % (1 << 16))
    docker_archive(path, [[("file", "big", data), ("file", "next", b"next entry")]], compression="gzip")
    got = {}

    def first(_layer, entry):
        if entry.path == "big":
            got["head"] = entry.head(5000)

    def last(_layer, entry):
        if entry.path == "big":
            got["cached"] = entry.skim(100, 200)  # inside the head already read
            got["across"] = entry.skim(4000, 3000)  # part cached, part from the stream
            got["far"] = entry.skim(size - 1000, 5000)  # past the end: what there is
            got["none"] = entry.skim(size - 10, 0) + entry.skim(size - 10, -5)  # nothing asked, nothing read
            got["head_again"] = entry.head(4000)
            with pytest.raises(RuntimeError):
                entry.fileobj.read()
            with pytest.raises(RuntimeError):
                entry.skim(size // 2, 10)  # passed over (beyond the cached head)
        elif entry.path == "next":
            got["next"] = entry.read(-1)

    with open_image(str(path)) as src:
        walk_image(src, [first, last])
    assert got["head"] == data[:5000] and got["head_again"] == data[:4000]
    assert got["cached"] == data[100:300] and got["across"] == data[4000:7000]
    assert got["far"] == data[size - 1000:] and got["next"] == b"next entry" and got["none"] == b""


def test_forward_stream_skips_and_refuses_to_go_back():
    fs = ForwardStream(io.BytesIO(bytes(range(256)) * 10_000))
    assert fs.read(3) == b"\x00\x01\x02"
    fs.seek(1000)
    assert fs.tell() == 1000 and fs.read(2) == bytes([1000 % 256, 1001 % 256])
    with pytest.raises(io.UnsupportedOperation):
        fs.seek(10)


@pytest.mark.parametrize("name,expected", [
    ("./usr/bin/env", ("usr/bin/env", None)),
    ("/etc/passwd", ("etc/passwd", "absolute path")),
    ("a/../b", ("b", "path contains '..'")),
    ("../../etc/shadow", ("", "'..' escapes the image root")),
    ("usr//lib/./x", ("usr/lib/x", None)),
])
def test_normalize(name, expected):
    assert normalize(name) == expected


def test_head_is_read_of_the_head_whoever_came_first(tmp_path):
    """Entry.head(n) (served from the body cache when an earlier visitor read that far) gives what
    read(n) gives: first visitor or not, bodies shorter than n, empty bodies, and a body of several
    MiB read whole in one call (filled in pieces of at most layers.CHUNK)."""
    path = tmp_path / "img.tar"
    big = os.urandom(3 * layers.CHUNK + 12345)
    docker_archive(path, [[("file", "big", big), ("file", "ab", b"ab"), ("file", "empty", b""),
                           ("file", "elf", b"\x7fELF" + os.urandom(70_000))]], compression="gzip")
    seen: dict[tuple[str, str], bytes] = {}

    def first(_layer, entry):
        if entry.type == "file":
            seen[("first", entry.path)] = entry.head(4)

    def whole(_layer, entry):
        if entry.type == "file":
            seen[("whole", entry.path)] = entry.fileobj.read()

    def after(_layer, entry):
        if entry.type == "file":
            seen[("after", entry.path)] = entry.head(4)
            seen[("after16", entry.path)] = entry.head(16)

    with open_image(str(path)) as src:
        walk_image(src, [first, whole, after])
    assert seen[("whole", "big")] == big
    for name, want in (("big", big), ("ab", b"ab"), ("empty", b"")):
        assert seen[("first", name)] == seen[("after", name)] == want[:4]
        assert seen[("after16", name)] == want[:16]
    assert seen[("first", "elf")] == seen[("after", "elf")] == b"\x7fELF"


def test_hashing_reader_read_ahead_gives_every_byte_once():
    """Small reads (a decompressor's input) are served from a PIECE read ahead; every byte is still
    returned once, in order, counted and hashed (checked against hashlib on the whole stream)."""
    import hashlib
    import random

    data = os.urandom(2 * layers.PIECE + 12345)
    rng = random.Random(7)
    reader = layers.HashingReader(io.BytesIO(data))
    out = bytearray()
    while True:
        n = rng.choice([1, 511, 512 * 1024, layers.PIECE, layers.PIECE + 7, -1])
        if rng.random() < 0.5:
            buf = bytearray(max(n, 1))
            chunk = bytes(buf[:reader.readinto(buf)])
        else:
            chunk = reader.read(n)
        if not chunk:
            break
        out += chunk
    reader.drain()
    assert bytes(out) == data and reader.count == len(data)
    assert reader.digest() == "sha256:" + hashlib.sha256(data).hexdigest()
    reader.close()


def _read_ahead_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "bilge-read-ahead" and t.is_alive()]


def test_read_ahead_gives_every_byte_once_in_order():
    import random

    data = os.urandom(5 * layers.AHEAD_PIECE + 4321)
    rng = random.Random(11)
    for _ in range(3):
        reader = rawio.ReadAhead(io.BytesIO(data), piece=rng.choice([1000, layers.AHEAD_PIECE]), depth=2)
        out = bytearray()
        while chunk := reader.read(rng.choice([1, 512, 70_000, layers.AHEAD_PIECE, 3 * layers.AHEAD_PIECE, -1])):
            out += chunk
        assert bytes(out) == data
        assert reader.read(10) == b"" and _read_ahead_threads() == []  # the thread ended with the stream
        reader.close()


def test_read_ahead_raises_the_streams_error_where_it_happened():
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 3

        def read(self, n: int = -1) -> bytes:
            if not self.left:
                raise EOFError("compressed file ended before the end-of-stream marker")
            self.left -= 1
            return b"x" * 100

    reader = rawio.ReadAhead(Broken(), piece=100)
    assert reader.read(300) == b"x" * 100  # one piece at a time
    assert reader.read(300) + reader.read(300) == b"x" * 200
    with pytest.raises(EOFError, match="end-of-stream"):
        reader.read(1)
    assert _read_ahead_threads() == []


def test_read_ahead_close_stops_a_thread_waiting_for_room():
    import time

    reader = rawio.ReadAhead(io.BytesIO(bytes(64 << 20)), piece=1 << 16, depth=2)
    assert reader.read(10) == bytes(10)
    time.sleep(0.05)  # the thread fills the queue and waits for room
    assert len(_read_ahead_threads()) == 1
    t = time.monotonic()
    reader.close()
    assert time.monotonic() - t < 2 and _read_ahead_threads() == []


def test_walk_abandoned_in_a_gzip_layer_leaves_no_thread(tmp_path):
    from bilge.testing import oci_layout

    oci_layout(tmp_path / "img", [{"layers": [[("file", f"f{i}", os.urandom(300_000)) for i in range(40)]]}],
               archive=False)
    with open_image(f"oci:{tmp_path / 'img'}") as src:
        walk = layers.iter_layer(src, src.image.layers[0])
        assert next(walk).path == "f0" and len(_read_ahead_threads()) == 1
        walk.close()  # the consumer stopped (an error, a signal): the thread goes with it
        assert _read_ahead_threads() == []
        assert sum(e.type == "file" for e in layers.iter_layer(src, src.image.layers[0])) == 40
    assert _read_ahead_threads() == []
