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
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from bilge.body import CHUNK, Body, BodyReader
from bilge.compression import sniff
from bilge.errors import DigestMismatchError, ImageFormatError, UnsupportedMediaTypeError
from bilge.image import Layer
from bilge.rawio import RawReader, ReadAhead
from bilge.tarstream import BodyStream, Member, TarFormatError, iter_members

if TYPE_CHECKING:
    from bilge.source.base import ImageSource

# the unit of hashing and of read-ahead: each piece handed to a hashing thread costs a GIL handoff
# (the thread needs the GIL back after every hashlib call): a decompressor's 512 KiB reads are served from
# a PIECE read ahead. 4 MiB pieces measured no faster and cost ~30 MB more peak memory.
PIECE = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
# bilge.rawio.ReadAhead: pieces of decompressed layer read ahead by the helper thread (decompression on
# the second core), and how many may wait
AHEAD_PIECE = 1 << 20
AHEAD_DEPTH = 4



class _ThreadedSha256:
    """sha256 computed in a helper thread (hashlib releases the GIL), overlapping decompression."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        # at most 16 pieces of at most PIECE bytes wait to be hashed: memory stays flat however the
        # stream is read
        self._queue: queue.Queue[memoryview | bytes | None] = queue.Queue(maxsize=16)
        self._thread = threading.Thread(target=self._run, name="bilge-sha256", daemon=True)
        self._thread.start()
        self._result: str | None = None

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._hash.update(data)

    def update(self, data: bytes) -> None:
        if len(data) <= PIECE:
            self._queue.put(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), PIECE):
            self._queue.put(view[start:start + PIECE])

    def hexdigest(self) -> str:
        if self._result is None:
            self._queue.put(None)
            self._thread.join()
            self._result = self._hash.hexdigest()
        return self._result

    def close(self) -> None:
        if self._result is None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
            self._result = self._hash.hexdigest()


class CountingReader(RawReader):
    """Counts (and, as :class:`HashingReader`, hashes) everything read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0

    def _seen(self, data: bytes) -> None:
        pass

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n is not None and n >= 0 else CHUNK * 16)
        if data:
            self._seen(data)
            self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class HashingReader(CountingReader):
    """A counting reader that also computes the sha256 of the stream (in a helper thread).

    Reads smaller than PIECE (a decompressor's input) are served from a PIECE read ahead, so that
    the hashing thread gets few, large pieces."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__(raw)
        self._hash = _ThreadedSha256()
        self._ahead = b""
        self._ahead_off = 0

    def read(self, n: int = -1) -> bytes:
        off = self._ahead_off
        avail = len(self._ahead) - off
        if avail:
            if n is None or n < 0 or n >= avail:
                data, self._ahead, self._ahead_off = self._ahead[off:] if off else self._ahead, b"", 0
                return data
            self._ahead_off = off + n
            return self._ahead[off:off + n]
        if n is None or n < 0 or n >= PIECE:
            return super().read(n)
        data = super().read(PIECE)
        if len(data) <= n:
            return data
        self._ahead, self._ahead_off = data, n
        return data[:n]

    def readinto(self, b) -> int:  # type: ignore[override]
        n = len(b)
        off = self._ahead_off
        avail = len(self._ahead) - off
        if not avail:
            data = super().read(max(n, PIECE))
            if len(data) <= n:
                b[: len(data)] = data
                return len(data)
            self._ahead, off, avail = data, 0, len(data)
        k = min(n, avail)
        b[:k] = memoryview(self._ahead)[off:off + k]
        if k == avail:
            self._ahead, self._ahead_off = b"", 0
        else:
            self._ahead_off = off + k
        return k

    def _seen(self, data: bytes) -> None:
        self._hash.update(data)

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        self._hash.close()
        super().close()


class ForwardStream(RawReader):
    """A forward-only, cheaply buffered view of a stream that tarfile can "seek" in.

    tarfile's own stream mode copies its whole buffer on every small read; this keeps one chunk and an
    offset, and skips forward by reading (so hashing readers below still see every byte).
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._buf = b""
        self._off = 0
        self._pos = 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._off:]]
            while chunk := self._raw.read(CHUNK):
                parts.append(chunk)
            self._buf, self._off = b"", 0
            data = b"".join(parts)
            self._pos += len(data)
            return data
        avail = len(self._buf) - self._off
        if n <= avail:
            data = self._buf[self._off:self._off + n]
            self._off += n
            self._pos += n
            return data
        parts = [self._buf[self._off:]] if avail else []
        need = n - avail
        self._buf, self._off = b"", 0
        while need > 0:
            chunk = self._raw.read(max(need, PIECE))
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._off = chunk, need
                need = 0
            else:
                parts.append(chunk)
                need -= len(chunk)
        data = b"".join(parts)
        self._pos += len(data)
        return data

    def block_at(self, pos: int) -> bytes:
        """Seek to ``pos`` and read one 512-byte tar header (fewer if the stream ends): one call per
        member for ``bilge.tarstream.iter_members``."""
        off = self._off + pos - self._pos
        if self._off <= off and off + 512 <= len(self._buf):
            self._off = off + 512
            self._pos = pos + 512
            return self._buf[off:off + 512]
        if pos != self._pos:
            self.seek(pos)
        return self.read(512)

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            pos += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("forward-only stream")
        delta = pos - self._pos
        if delta < 0:
            raise io.UnsupportedOperation(f"cannot seek backwards in a layer stream ({self._pos} -> {pos})")
        avail = len(self._buf) - self._off
        if delta <= avail:
            self._off += delta
            self._pos = pos
            return pos
        delta -= avail
        self._buf, self._off = b"", 0
        while delta > 0:
            chunk = self._raw.read(min(delta, CHUNK * 4))
            if not chunk:
                break
            delta -= len(chunk)
        self._pos = pos - max(delta, 0)
        return self._pos

    def drain(self) -> None:
        self._buf, self._off = b"", 0
        while self._raw.read(CHUNK * 4):
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


@dataclass(eq=False, slots=True)
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
    _stream: BinaryIO | None = field(default=None, repr=False)
    _offset: int = field(default=0, repr=False)
    _body: Body | None = field(default=None, repr=False)

    @property
    def fileobj(self) -> BinaryIO:
        """A new, independent, seekable reader of the body (empty for non-files). Valid until the next entry."""
        if self.type != "file" or self._stream is None or self.size == 0:
            return io.BytesIO(b"")  # type: ignore[return-value]
        return BodyReader(self._cache())  # type: ignore[return-value]

    def read(self, n: int = -1) -> bytes:
        """The first ``n`` bytes of the body (all of it with -1); every call starts at offset 0."""
        return self.fileobj.read(n)

    def head(self, n: int) -> bytes:
        """``read(n)`` without making a reader: served from the body cache (filled as far as needed,
        the whole body when it is at most WHOLE_BODY bytes). The whole cached body is returned
        without a copy."""
        body = self._body or self._cache()
        return body.read_at(0, n) if body is not None else b""

    def skim(self, pos: int, n: int) -> bytes:
        """``n`` bytes at ``pos`` for the last reader of the body, read forward without keeping what is
        passed over (:meth:`bilge.body.Body.skim`); others can still read the cached head afterwards."""
        body = self._body or self._cache()
        return body.skim(pos, n) if body is not None else b""

    def _cache(self) -> Body | None:
        """The body cache every reader of this entry shares, made on first use (None without a body)."""
        if self._body is None and self.type == "file" and self._stream is not None and self.size:
            self._body = Body(BodyStream(self._stream, self._offset, self.size), self.size)  # type: ignore[arg-type]
        return self._body

    def chunks(self) -> Iterator[bytes]:
        """The whole body in pieces straight from the layer stream, nothing kept: for the one reader
        of a body that nobody else reads (a digest). Raises ImageFormatError when the layer ends early."""
        if self._body is not None or self.type != "file" or self._stream is None or self.size == 0:
            fh = self.fileobj
            while data := fh.read(CHUNK):
                yield data
            return
        body, left = BodyStream(self._stream, self._offset, self.size), self.size
        while left:
            data = body.read(min(left, CHUNK * 4))
            if not data:
                raise ImageFormatError("unexpected end of layer inside a file body (truncated layer?)")
            left -= len(data)
            yield data

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.path)




class _Peek(RawReader):
    """Give back the bytes already read for sniffing, then continue with the underlying stream."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        super().__init__()
        self._head, self._raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._raw.read(n)


@dataclass
class LayerStats:
    """Filled in while a layer streams: what it really was."""

    compression: str = ""
    uncompressed_bytes: int = 0
    verified: bool = False


def iter_layer(src: ImageSource, layer: Layer, *, verify: bool | None = None,
               stats: LayerStats | None = None) -> Iterator[Entry]:
    """Yield the entries of one layer; see the module docstring."""
    verify = src.verify if verify is None else verify
    stats = stats if stats is not None else LayerStats()
    label = f"layer {layer.index} ({(layer.digest or layer.diff_id or '?')[:19]})"
    raw = src.open_layer_blob(layer)
    try:
        head = raw.read(512)
        kind = sniff(head)
        stats.compression = kind
        if kind in ("bzip2", "xz", "unknown"):
            raise UnsupportedMediaTypeError(
                f"{label}: unsupported layer format ({kind if kind != 'unknown' else 'not tar, gzip or zstd'}; "
                f"media type {layer.media_type or 'unknown'})")
        seekable = kind == "tar" and not verify and hasattr(raw, "seekable") and raw.seekable()
        if seekable:
            raw.seek(0)
            yield from _entries(raw, label)
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
        ahead = ReadAhead(tar_stream, AHEAD_PIECE, AHEAD_DEPTH) if kind != "tar" else None
        try:
            forward = ForwardStream(ahead if ahead is not None else tar_stream)
            yield from _entries(forward, label)
            forward.drain()  # trailing zero blocks, eStargz TOC and footer: all part of the diff_id
        except (EOFError, OSError, zlib_error(), zstd_error()) as exc:
            raise ImageFormatError(f"{label}: corrupt or truncated layer ({exc.__class__.__name__}: {exc})") from None
        finally:
            if ahead is not None:
                ahead.close()
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
        for reader in (locals().get("blob"), locals().get("tar_stream")):
            if isinstance(reader, HashingReader):
                reader.close()
        raw.close()


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def zstd_error() -> type[Exception]:
    import zstandard

    return zstandard.ZstdError


_TYPES = {
    b"0": "file", b"\0": "file", b"7": "file", b"5": "dir", b"2": "symlink", b"1": "hardlink",
    b"3": "char", b"4": "block", b"6": "fifo",
}


def _entries(fh: BinaryIO, label: str) -> Iterator[Entry]:
    try:
        for member in iter_members(fh):
            yield _make_entry(fh, member)
    except TarFormatError as exc:
        raise ImageFormatError(f"{label}: {exc}") from None


def _is_normal(name: str) -> bool:
    """``name`` is already what :func:`normalize` makes of it, but for one trailing slash."""
    return (not name.startswith(("/", "./", "../")) and "//" not in name and "/./" not in name
            and "/../" not in name and not name.endswith(("/.", "/..")) and name != "." and name != "..")


def _make_entry(fh: BinaryIO, m: Member) -> Entry:
    name = m.name
    if _is_normal(name):
        path, problem = (name[:-1] if name.endswith("/") else name), None
    else:
        path, problem = normalize(name)
    etype = _TYPES.get(m.type, "other")
    if etype == "file" and name.endswith("/") and m.type in (b"0", b"\0"):
        etype = "dir"  # pre-POSIX archives mark directories with a trailing slash
    linkname = m.linkname or ""
    if etype == "hardlink":
        target, lproblem = normalize(linkname)
        linkname = target
        if lproblem and "escapes" in lproblem:
            problem = problem or f"hardlink target {m.linkname!r} escapes the image root"
    whiteout = None
    if WHITEOUT_PREFIX in path:
        parent, _, base = path.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            if base == OPAQUE:
                whiteout = ("opaque", parent)
            elif base[len(WHITEOUT_PREFIX):] in ("", ".", ".."):
                # ".wh." names no file: read literally it would hide its own directory (the root, for a
                # top-level one) while files under it stay visible. Refused like a '..' entry, everywhere.
                problem = f"whiteout {base!r} names no file (it would hide its parent directory)"
            else:
                whiteout = ("file", f"{parent}/{base[len(WHITEOUT_PREFIX):]}" if parent
                            else base[len(WHITEOUT_PREFIX):])
    # positional: the order of Entry's fields
    return Entry(path, name, etype, m.size if etype == "file" else 0, m.mode & 0o7777, m.uid, m.gid, m.uname,
                 m.gname, m.mtime, linkname, whiteout,
                 problem if problem and ("escapes" in problem or "whiteout" in problem) else None,
                 m.devmajor, m.devminor, m.pax, fh, m.offset_data)
