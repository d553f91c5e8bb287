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
use zlib (ISA-L has nothing at those ratios); zstd through ``zstandard`` (single-threaded, so the
frame does not depend on the machine's core count); ``none`` writes the plain tar.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import zstandard
from isal import isal_zlib

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


class _Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


class _ZstdAdapter:
    def __init__(self, level: int) -> None:
        self._obj = zstandard.ZstdCompressor(level=level, write_checksum=False).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _compressor(c: Compression) -> _Compressor:
    level = c.effective_level
    if c.kind == "gzip":
        if level <= 3:
            return isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
        return zlib.compressobj(level, zlib.DEFLATED, 31)
    if c.kind == "zstd":
        return _ZstdAdapter(level)
    return _Identity()


class _Pipe:
    """Uncompressed bytes in; diff_id hash, compressor, digest hash, output file."""

    def __init__(self, out: BinaryIO, compression: Compression) -> None:
        self.out = out
        self.comp = _compressor(compression)
        self.raw_hash = hashlib.sha256()
        self.blob_hash = hashlib.sha256()
        self.raw_size = 0
        self.blob_size = 0
        self.buf = bytearray()

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob_hash.update(data)
            self.blob_size += len(data)
            self.out.write(data)

    def _push(self, data: bytes | bytearray | memoryview) -> None:
        self.raw_hash.update(data)
        self.raw_size += len(data)
        self._emit(self.comp.compress(bytes(data)))

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= CHUNK:
            self.flush_buf()
            self._push(data)
            return
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush_buf()

    def flush_buf(self) -> None:
        if self.buf:
            self._push(self.buf)
            self.buf = bytearray()

    def finish(self) -> None:
        self.flush_buf()
        self._emit(self.comp.flush())


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


def tar_header(m: Member, clamp: int | None = None) -> bytes:
    """The normalised header block(s) for one member."""
    name = m.path.strip("/")
    if not name or name in (".", "./"):
        raise ValueError("the root directory is not written as a member")
    info = tarfile.TarInfo(name + "/" if m.type == "dir" else name)
    info.type = _TAR_TYPE[m.type]
    info.mode = m.mode & 0o7777
    info.uid = m.uid
    info.gid = m.gid
    info.uname = ""
    info.gname = ""
    mtime = int(m.mtime)
    if clamp is not None and mtime > clamp:
        mtime = clamp
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
    return LayerBlob(
        digest="sha256:" + pipe.blob_hash.hexdigest(),
        diff_id="sha256:" + pipe.raw_hash.hexdigest(),
        size=pipe.blob_size,
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
    if head[:2] == b"\x1f\x8b":
        from isal import igzip

        return DecodedStream("gzip", igzip.IGzipFile(fileobj=src, mode="rb"))  # type: ignore[arg-type]
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return DecodedStream("zstd", zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True))
    return DecodedStream("none", src)
