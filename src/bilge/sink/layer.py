"""The reproducible layer writer shared by every sink.

A layer is written from an iterable of ``(Member, body)`` pairs, in the order given: the caller
chooses a deterministic order (``sorted_members`` sorts small in-memory layers by path; squash
streams its own documented order). While the tar is produced the writer computes, in one pass:
the diff_id (sha256 of the uncompressed tar), the digest (sha256 of the compressed blob) and both
sizes. Nothing is held whole in memory: bodies are copied in 1 MiB chunks.

Headers are normalised so that the bytes depend only on what a container runtime sees: POSIX
ustar, with a PAX extended header only when a field does not fit (long or non-ASCII names, big
sizes or ids, xattrs); uname/gname empty (runtimes use the numeric ids); device numbers only on
devices; no atime/ctime; mtimes kept as given but clamped to ``SOURCE_DATE_EPOCH`` when set; the
archive ends with the two zero blocks tar requires and no record padding. Gzip output carries no
file name and a zero mtime, so the same entries and options always give the same bytes.

Compression: gzip levels 1-3 use ISA-L (4x zlib's speed at about zlib -1's ratio), levels 4-9
use zlib (ISA-L has nothing at those ratios); zstd through ``zstandard``. ISA-L and zstd run in
worker threads while the tar is produced, and their bytes do not depend on how many; ``none``
writes the plain tar.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tarfile
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard

from bilge.compression import sniff
from bilge.errors import BilgeError
from bilge.image import OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD

CHUNK = 1 << 20
BLOCK = 512

MEMBER_TYPES = ("file", "dir", "symlink", "hardlink", "char", "block", "fifo")
_TAR_TYPE = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


@dataclass(frozen=True)
class Member:
    """One tar entry to write. ``path`` is relative ("usr/bin/env"), directories without a
    trailing slash; ``linkname`` is the symlink target as stored, or the hardlink's target path."""

    path: str
    type: str = "file"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()

    def __post_init__(self) -> None:
        if self.type not in _TAR_TYPE:
            raise ValueError(f"unknown member type {self.type!r}")
        if self.type != "file" and self.size:
            raise ValueError(f"{self.path}: only regular files carry a body")


Body = bytes | BinaryIO | None


@dataclass(frozen=True)
class Compression:
    kind: str = "gzip"  # gzip | zstd | none
    level: int | None = None  # None: the kind's default

    def __post_init__(self) -> None:
        if self.kind not in ("gzip", "zstd", "none"):
            raise BilgeError(f"unknown compression {self.kind!r}: expected gzip, zstd or none")
        if self.level is not None:
            lo, hi = {"gzip": (1, 9), "zstd": (1, 22), "none": (0, 0)}[self.kind]
            if not lo <= self.level <= hi:
                raise BilgeError(f"{self.kind} level must be between {lo} and {hi}, not {self.level}")

    @property
    def effective_level(self) -> int:
        if self.level is not None:
            return self.level
        return {"gzip": 3, "zstd": 3, "none": 0}[self.kind]

    @property
    def media_type(self) -> str:
        return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[self.kind]

    def describe(self) -> str:
        if self.kind == "none":
            return "uncompressed"
        engine = "ISA-L" if self.kind == "gzip" and self.effective_level <= 3 else (
            "zlib" if self.kind == "gzip" else "zstd")
        return f"{self.kind} -{self.effective_level} ({engine})"


@dataclass(frozen=True)
class LayerBlob:
    """What the writer measured while writing one layer."""

    digest: str  # sha256:... of the stored (compressed) bytes
    diff_id: str  # sha256:... of the uncompressed tar
    size: int  # stored bytes
    uncompressed_size: int
    media_type: str
    entries: int = 0


class _BlobSink:
    """The stored bytes' end of the pipe: sha256, size, file. Called from the compressor's thread."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        if n:
            self.hash.update(data)
            self.size += n
            self.out.write(data)
        return n

    def flush(self) -> None:
        pass


class _ZlibWriter:
    def __init__(self, sink: _BlobSink, level: int) -> None:
        self.sink = sink
        self.obj = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> None:
        self.sink.write(self.obj.compress(data))

    def close(self) -> None:
        self.sink.write(self.obj.flush())


class _Plain:
    def __init__(self, sink: _BlobSink) -> None:
        self.sink = sink

    def write(self, data: bytes) -> None:
        self.sink.write(data)

    def close(self) -> None:
        pass


def compression_threads() -> int:
    """Compression worker threads: up to 4, never more than the CPUs this process may use."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def _compressor(c: Compression, sink: _BlobSink) -> Any:
    """A writer of uncompressed bytes into ``sink``. gzip -1..-3 and zstd compress in worker threads
    (ISA-L and zstd release the GIL there), overlapping the tar stream being produced.

    The bytes do not depend on the number of workers: ISA-L compresses fixed 1 MiB blocks, each with
    the previous block's last 32 KiB as dictionary; zstd's multi-threaded mode gives the same frame
    for any number of workers >= 1 (the tests check both). The pipe always writes whole CHUNK blocks."""
    level = c.effective_level
    if c.kind == "gzip":
        if level <= 3:
            from isal import igzip_threaded

            return igzip_threaded.open(sink, "wb", compresslevel=level, threads=compression_threads(),
                                       block_size=CHUNK)
        return _ZlibWriter(sink, level)
    if c.kind == "zstd":
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=False, threads=compression_threads())
        return cctx.stream_writer(sink, closefd=False, write_return_read=True)  # type: ignore[arg-type]
    return _Plain(sink)


class _Pipe:
    """Uncompressed bytes in, cut into whole CHUNK blocks, handed to a feeder thread that hashes
    them (the diff_id) and passes them to the compressor, so the caller only builds the tar."""

    def __init__(self, out: BinaryIO, compression: Compression) -> None:
        self.sink = _BlobSink(out)
        self.comp = _compressor(compression, self.sink)
        self.raw_hash = hashlib.sha256()
        self.raw_size = 0
        self.buf = bytearray()
        self.closed = False
        self.error: BaseException | None = None
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.thread = threading.Thread(target=self._feed, name="bilge-layer-writer", daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        while (block := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain after a failure
            try:
                self.raw_hash.update(block)
                self.comp.write(block)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self.error = exc

    def _push(self, block: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.raw_size += len(block)
        self.queue.put(block)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.buf and len(data) == CHUNK:
            self._push(bytes(data))
            return
        self.buf += data
        if len(self.buf) >= CHUNK:
            view = memoryview(self.buf)
            whole = len(self.buf) - len(self.buf) % CHUNK
            for i in range(0, whole, CHUNK):
                self._push(bytes(view[i:i + CHUNK]))
            view.release()
            del self.buf[:whole]

    def _stop_feeder(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def finish(self) -> None:
        if self.buf:
            self._push(bytes(self.buf))
            self.buf = bytearray()
        self._stop_feeder()
        self.closed = True
        if self.error is not None:
            raise self.error
        self.comp.close()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.error = self.error or OSError("aborted")
            self._stop_feeder()
            try:
                self.comp.close()
            except Exception:  # noqa: BLE001 - the write already failed; this only stops the thread
                pass


def source_date_epoch(env: Mapping[str, str] | None = None) -> int | None:
    """SOURCE_DATE_EPOCH as an int, None when unset; a malformed value is a usage error."""
    value = (os.environ if env is None else env).get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    try:
        epoch = int(value)
    except ValueError:
        raise BilgeError(f"SOURCE_DATE_EPOCH must be an integer number of seconds, not {value!r}") from None
    if epoch < 0:
        raise BilgeError(f"SOURCE_DATE_EPOCH must not be negative, not {value!r}")
    return epoch


_OCT8 = 8**7
_OCT12 = 8**11


def _fast_ustar(name: str, m: Member, mtime: int) -> bytes | None:
    """The ustar header tarfile would write, built directly for the common case (ASCII names up to
    100 bytes, numbers that fit, no xattrs); None when tarfile must do it (PAX records needed)."""
    if m.xattrs or not (0 <= m.uid < _OCT8 and 0 <= m.gid < _OCT8 and 0 <= mtime < _OCT12
                        and 0 <= m.size < _OCT12):
        return None
    try:
        bname = name.encode("ascii")
        blink = (m.linkname if m.type in ("symlink", "hardlink") else "").encode("ascii")
    except UnicodeEncodeError:
        return None
    if len(bname) > 100 or len(blink) > 100:
        return None
    dev = m.type in ("char", "block")
    if dev and not (0 <= m.devmajor < _OCT8 and 0 <= m.devminor < _OCT8):
        return None
    head = b"".join((
        bname.ljust(100, b"\0"),
        b"%07o\0" % (m.mode & 0o7777),
        b"%07o\0" % m.uid,
        b"%07o\0" % m.gid,
        b"%011o\0" % (m.size if m.type == "file" else 0),
        b"%011o\0" % mtime,
        b"        ",
        _TAR_TYPE[m.type],
        blink.ljust(100, b"\0"),
        b"ustar\x0000",
        b"\0" * 64,
        b"%07o\0%07o\0" % (m.devmajor, m.devminor) if dev else b"\0" * 16,
        b"\0" * 167,
    ))
    chksum = sum(head)
    return head[:148] + b"%06o\0 " % chksum + head[156:]


def tar_header(m: Member, clamp: int | None = None) -> bytes:
    """The normalised header block(s) for one member."""
    name = m.path.strip("/")
    if not name or name in (".", "./"):
        raise ValueError("the root directory is not written as a member")
    mtime = int(m.mtime)
    if clamp is not None and mtime > clamp:
        mtime = clamp
    fast = _fast_ustar(name + "/" if m.type == "dir" else name, m, mtime)
    return fast if fast is not None else _tarfile_header(name, m, mtime)


def _tarfile_header(name: str, m: Member, mtime: int) -> bytes:
    """tarfile's PAX-format header (PAX records only where a field does not fit)."""
    info = tarfile.TarInfo(name + "/" if m.type == "dir" else name)
    info.type = _TAR_TYPE[m.type]
    info.mode = m.mode & 0o7777
    info.uid = m.uid
    info.gid = m.gid
    info.uname = ""
    info.gname = ""
    info.mtime = mtime
    info.size = m.size if m.type == "file" else 0
    info.linkname = m.linkname if m.type in ("symlink", "hardlink") else ""
    if m.type in ("char", "block"):
        info.devmajor = m.devmajor
        info.devminor = m.devminor
    if m.xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape") for key, value in sorted(m.xattrs)
        }
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _copy_body(pipe: _Pipe, m: Member, body: Body) -> None:
    remaining = m.size
    if m.type != "file" or remaining == 0:
        if isinstance(body, bytes | bytearray) and len(body):
            raise BilgeError(f"{m.path}: body given for a {m.type} of size 0")
        return
    if body is None:
        raise BilgeError(f"{m.path}: no body for a file of {m.size} bytes")
    if isinstance(body, bytes | bytearray | memoryview):
        if len(body) != remaining:
            raise BilgeError(f"{m.path}: body is {len(body)} bytes, header says {remaining}")
        pipe.write(body)
    else:
        while remaining:
            chunk = body.read(min(CHUNK, remaining))
            if not chunk:
                raise BilgeError(f"{m.path}: body ended {remaining} bytes short of its size {m.size}")
            pipe.write(chunk)
            remaining -= len(chunk)
    pad = -m.size % BLOCK
    if pad:
        pipe.write(b"\0" * pad)


def write_layer(
    members: Iterable[tuple[Member, Body]],
    out: BinaryIO,
    compression: Compression | None = None,
    *,
    clamp: int | None = None,
) -> LayerBlob:
    """Write one layer to ``out``; return its digest, diff_id and sizes."""
    compression = compression or Compression()
    pipe = _Pipe(out, compression)
    seen: set[str] = set()
    count = 0
    try:
        for member, body in members:
            key = member.path.strip("/")
            if key in seen:
                raise BilgeError(f"layer writer: {key!r} written twice in one layer")
            seen.add(key)
            pipe.write(tar_header(member, clamp))
            _copy_body(pipe, member, body)
            count += 1
        pipe.write(b"\0" * (2 * BLOCK))
        pipe.finish()
    finally:
        pipe.abort()
    return LayerBlob(
        digest="sha256:" + pipe.sink.hash.hexdigest(),
        diff_id="sha256:" + pipe.raw_hash.hexdigest(),
        size=pipe.sink.size,
        uncompressed_size=pipe.raw_size,
        media_type=compression.media_type,
        entries=count,
    )


def sorted_members(items: Iterable[tuple[Member, Body]]) -> list[tuple[Member, Body]]:
    """Sort an in-memory layer: parents before children (path components compared in order),
    hardlinks after everything else so their targets always come first."""
    items = list(items)
    return sorted(items, key=lambda it: (it[0].type == "hardlink", it[0].path.strip("/").split("/")))


@dataclass(frozen=True)
class DecodedStream:
    """A decompressing reader of a stored layer, with the compression it detected."""

    kind: str
    reader: Any


class _Prefixed:
    """Bytes already read (for sniffing) followed by the rest of the stream."""

    def __init__(self, prefix: bytes, raw: Any) -> None:
        self.prefix = prefix
        self.raw = raw

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            if n < 0:
                data, self.prefix = self.prefix + self.raw.read(), b""
                return data
            data, self.prefix = self.prefix[:n], self.prefix[n:]
            if len(data) < n:
                data += self.raw.read(n - len(data))
            return data
        return self.raw.read(n)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def open_decompressed(raw: Any) -> DecodedStream:
    """Sniff gzip / zstd / plain tar from magic bytes and return a reader of the tar bytes."""
    head = raw.read(4)
    src = _Prefixed(head, raw)
    kind = sniff(head)
    if kind == "gzip":
        from isal import igzip

        return DecodedStream("gzip", igzip.IGzipFile(fileobj=src, mode="rb"))  # type: ignore[arg-type]
    if kind == "zstd":
        return DecodedStream("zstd", zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True))
    return DecodedStream("none", src)
