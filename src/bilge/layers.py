"""One layer blob → a stream of tar entries.

The compression is sniffed from the blob's magic bytes (the media type is only a hint): plain tar,
gzip (every member of a multi-member stream, as eStargz writes), zstd (every frame). With ``verify``
the blob's sha256 and the uncompressed stream's sha256 (the diff_id) are computed while streaming and
checked at the end. Without ``verify``, an uncompressed layer in a seekable store is read by seeking
past file bodies. Nothing is extracted to disk and no layer is held in memory.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from bilge.errors import DigestMismatchError, ImageFormatError, UnsupportedMediaTypeError
from bilge.image import Layer

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"

_TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.GNUTYPE_SPARSE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}


class HashingReader(io.RawIOBase):
    """Counts and hashes everything read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n is not None and n >= 0 else CHUNK * 16)
        if data:
            self._hash.update(data)
            self.count += len(data)
        return data

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class CountingReader(io.RawIOBase):
    """Counts bytes read (used when not verifying, for the uncompressed size)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n is not None and n >= 0 else CHUNK * 16)
        self.count += len(data)
        return data

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def normalize(name: str) -> tuple[str, str | None]:
    """Normalise a tar member name to a root-relative path; return (path, problem or None)."""
    problem = None
    if name.startswith("/"):
        problem = "absolute path"
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return "", "'..' escapes the image root"
            parts.pop()
            problem = problem or "path contains '..'"
            continue
        parts.append(part)
    return "/".join(parts), problem


@dataclass(eq=False)
class Entry:
    """One tar entry of a layer. The body is readable only until the next entry is requested."""

    path: str
    raw_name: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    linkname: str
    whiteout: tuple[str, str] | None = None  # ("file", target path) | ("opaque", dir path)
    unsafe: str | None = None
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)
    _tar: tarfile.TarFile | None = field(default=None, repr=False)
    _info: tarfile.TarInfo | None = field(default=None, repr=False)
    _fileobj: BinaryIO | None = field(default=None, repr=False)

    @property
    def fileobj(self) -> BinaryIO:
        if self.type != "file" or self._tar is None:
            return io.BytesIO(b"")  # type: ignore[return-value]
        if self._fileobj is None:
            self._fileobj = self._tar.extractfile(self._info)  # type: ignore[assignment, arg-type]
        return self._fileobj  # type: ignore[return-value]

    def read(self, n: int = -1) -> bytes:
        return self.fileobj.read(n)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.path)


def _sniff(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if not head.strip(b"\x00"):
        return "tar"  # an empty tar: only zero blocks (or a zero-length blob)
    if len(head) >= 512:
        try:
            tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
            return "tar"  # a pre-POSIX (v7) tar header
        except tarfile.HeaderError:
            pass
    return "unknown"


class _Peek(io.RawIOBase):
    """Give back the bytes already read for sniffing, then continue with the underlying stream."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        super().__init__()
        self._head, self._raw = head, raw

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._raw.read(n)

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


@dataclass
class LayerStats:
    """Filled in while a layer streams: what it really was."""

    compression: str = ""
    uncompressed_bytes: int = 0
    verified: bool = False


def iter_layer(src, layer: Layer, *, verify: bool | None = None,
               stats: LayerStats | None = None) -> Iterator[Entry]:
    """Yield the entries of one layer; see the module docstring."""
    verify = src.verify if verify is None else verify
    stats = stats if stats is not None else LayerStats()
    label = f"layer {layer.index} ({(layer.digest or layer.diff_id or '?')[:19]})"
    raw = src.open_layer_blob(layer)
    try:
        head = raw.read(512)
        kind = _sniff(head)
        stats.compression = kind
        if kind in ("bzip2", "xz", "unknown"):
            raise UnsupportedMediaTypeError(
                f"{label}: unsupported layer format ({kind if kind != 'unknown' else 'not tar, gzip or zstd'}; "
                f"media type {layer.media_type or 'unknown'})")
        seekable = kind == "tar" and not verify and hasattr(raw, "seekable") and raw.seekable()
        if seekable:
            raw.seek(0)
            yield from _entries(tarfile.open(fileobj=raw, mode="r:"), label)
            stats.uncompressed_bytes = layer.size
            return
        blob = HashingReader(_Peek(head, raw)) if verify and layer.digest else CountingReader(_Peek(head, raw))
        if kind == "gzip":
            from isal import igzip

            stream: BinaryIO = igzip.IGzipFile(fileobj=blob, mode="rb")  # type: ignore[assignment]
        elif kind == "zstd":
            import zstandard

            stream = zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True,
                                                                read_size=CHUNK)  # type: ignore[assignment]
        else:
            stream = blob  # type: ignore[assignment]
        tar_stream = HashingReader(stream) if verify and layer.diff_id else CountingReader(stream)
        try:
            tf = tarfile.open(fileobj=tar_stream, mode="r|", bufsize=CHUNK)
            yield from _entries(tf, label)
            tar_stream.drain()  # trailing zero blocks, eStargz TOC and footer: all part of the diff_id
        except (EOFError, OSError, tarfile.TarError, zlib_error(), zstd_error()) as exc:
            raise ImageFormatError(f"{label}: corrupt or truncated layer ({exc.__class__.__name__}: {exc})") from None
        if kind != "tar":
            blob.drain()
        stats.uncompressed_bytes = tar_stream.count
        if verify:
            if isinstance(blob, HashingReader) and blob.digest() != layer.digest:
                raise DigestMismatchError(f"{label}: blob digest mismatch: expected {layer.digest}, "
                                          f"got {blob.digest()}")
            if isinstance(tar_stream, HashingReader) and tar_stream.digest() != layer.diff_id:
                raise DigestMismatchError(f"{label}: diff_id mismatch: config says {layer.diff_id}, "
                                          f"uncompressed layer is {tar_stream.digest()}")
            stats.verified = True
    finally:
        raw.close()


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def zstd_error() -> type[Exception]:
    import zstandard

    return zstandard.ZstdError


def _entries(tf: tarfile.TarFile, label: str) -> Iterator[Entry]:
    try:
        while True:
            try:
                info = tf.next()
            except tarfile.HeaderError as exc:
                raise ImageFormatError(f"{label}: bad tar header ({exc})") from None
            if info is None:
                return
            tf.members.clear()  # keep memory flat: tarfile would remember every member
            yield _make_entry(tf, info)
    except tarfile.ReadError as exc:
        raise ImageFormatError(f"{label}: corrupt or truncated layer ({exc})") from None


def _make_entry(tf: tarfile.TarFile, info: tarfile.TarInfo) -> Entry:
    path, problem = normalize(info.name)
    etype = _TYPES.get(info.type, "file" if info.isreg() else "other")
    linkname = info.linkname or ""
    if etype == "hardlink":
        target, lproblem = normalize(linkname)
        linkname = target
        if lproblem and "escapes" in lproblem:
            problem = problem or f"hardlink target {info.linkname!r} escapes the image root"
    whiteout = None
    base = posixpath.basename(path)
    if base.startswith(WHITEOUT_PREFIX) and path:
        parent = posixpath.dirname(path)
        if base == OPAQUE:
            whiteout = ("opaque", parent)
        else:
            whiteout = ("file", posixpath.join(parent, base[len(WHITEOUT_PREFIX):]) if parent
                        else base[len(WHITEOUT_PREFIX):])
    if not path and problem is None:
        problem = None  # the root directory itself ("./")
    return Entry(
        path=path, raw_name=info.name, type=etype, size=info.size if etype == "file" else 0,
        mode=info.mode & 0o7777, uid=info.uid, gid=info.gid, uname=info.uname or "", gname=info.gname or "",
        mtime=info.mtime, linkname=linkname, whiteout=whiteout,
        unsafe=problem if problem and "escapes" in problem else None,
        devmajor=info.devmajor, devminor=info.devminor, pax=dict(info.pax_headers or {}),
        _tar=tf, _info=info,
    )
