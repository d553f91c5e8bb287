"""Blobs from a registry: forward-only streams that survive a dropped connection, and the
content-addressed blob cache.

:class:`BlobStream` reads one blob straight from the HTTP response into whoever reads it (the layer
reader): nothing is written to disk, and at most one network chunk is held. When the connection
drops mid-blob it asks again from where it stopped (``Range: bytes=N-``; a registry that ignores the
Range and sends the whole blob again is skipped forward), within the client's retry budget. It checks
the length, and -- when it fills the cache, or when asked to -- the digest.

:class:`BlobCache` (``--cache`` / ``--cache-dir``): ``ROOT/blobs/sha256/<hex>``, written through a
temporary file and renamed into place only once the whole blob hashed to its digest; read back
after hashing it again: an entry that no longer matches is removed and the blob downloaded again.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx

from bilge import rawio
from bilge.errors import DigestMismatchError, ImageFormatError
from bilge.rawio import RawReader
from bilge.remote.client import RegistryClient, RegistryError, describe_transport_error, retriable
from bilge.source.base import FetchProgress

CHUNK = 1 << 20


def _hex(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
        raise ImageFormatError(f"unsupported or malformed digest {digest!r}")
    return hexd


class BlobCache:
    """A content-addressed directory of verified blobs."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.dir = self.root / "blobs" / "sha256"
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise RegistryError(f"cache directory {self.root}: {exc.strerror or exc}") from None

    def path(self, digest: str) -> Path:
        return self.dir / _hex(digest)

    def open(self, digest: str, size: int | None) -> BinaryIO | None:
        """The cached blob, hashed first: an entry that no longer matches its digest is removed (and
        the caller downloads the blob again). None when absent."""
        path = self.path(digest)
        try:
            fh = open(path, "rb")  # noqa: SIM115
        except OSError:
            return None
        h = hashlib.sha256()
        n = 0
        while chunk := fh.read(CHUNK * 4):
            h.update(chunk)
            n += len(chunk)
        if "sha256:" + h.hexdigest() != digest or (size is not None and size >= 0 and n != size):
            fh.close()
            path.unlink(missing_ok=True)
            return None
        fh.seek(0)
        return fh

    def writer(self, digest: str) -> CacheWriter:
        return CacheWriter(self, digest)


class CacheWriter:
    """Collects a blob into a temp file of the cache; ``commit`` renames it when the digest matches."""

    def __init__(self, cache: BlobCache, digest: str) -> None:
        self.cache, self.digest = cache, digest
        fd, name = tempfile.mkstemp(dir=cache.dir, prefix=".tmp-")
        self._fh = os.fdopen(fd, "wb")
        self._tmp = Path(name)

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def commit(self, actual: str) -> None:
        self._fh.close()
        if actual == self.digest:
            os.replace(self._tmp, self.cache.path(self.digest))
        else:
            self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        self._fh.close()
        self._tmp.unlink(missing_ok=True)


class BlobStream(RawReader):
    """One blob from the registry, read forward (see the module docstring)."""

    def __init__(self, client: RegistryClient, digest: str, size: int | None, *, label: str = "",
                 cache: BlobCache | None = None, verify: bool = False,
                 progress: FetchProgress | None = None) -> None:
        super().__init__()
        self._client, self.digest, self.size = client, digest, size
        self.label = label or f"blob {digest[:19]}"
        self._writer = cache.writer(digest) if cache is not None else None
        self._hash = hashlib.sha256() if (verify or self._writer is not None) else None
        self._progress = progress
        self._received = 0  # bytes that arrived (hashed, cached); a resume asks from here
        self._buf = b""
        self._off = 0
        self._resp: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._eof = False
        self._failures = 0
        if progress is not None:
            progress.begin(digest, self.label, size)
        try:
            self._connect()
        except BaseException:
            self._cleanup()
            raise

    def _connect(self) -> None:
        self._buf, self._off = b"", 0  # (called only once the buffer has been read)
        resp = self._client.open_blob(self.digest, self._received)
        skip = 0
        if self._received:
            if resp.status_code == 206:
                start = _content_range_start(resp.headers.get("Content-Range", ""))
                if start != self._received:
                    resp.close()
                    raise RegistryError(f"{self._client.label}: {self.label}: the registry resumed at byte "
                                        f"{start}, not {self._received}")
            else:  # 200: the whole blob again; skip what already arrived
                skip = self._received
        self._resp = resp
        self._chunks = resp.iter_raw()  # as the network delivers: a resume loses nothing
        while skip:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            if len(chunk) > skip:
                self._buf, self._off = chunk[skip:], 0
                self._account(self._buf)
                skip = 0
            else:
                skip -= len(chunk)

    def _account(self, data: bytes) -> None:
        """Bytes that have arrived for the first time: count, hash, cache, progress."""
        self._received += len(data)
        if self.size is not None and self._received > self.size:
            raise RegistryError(f"{self._client.label}: {self.label}: the registry sent more than the "
                                f"{self.size} bytes the manifest says")
        if self._hash is not None:
            self._hash.update(data)
        if self._writer is not None:
            self._writer.write(data)
        if self._progress is not None:
            self._progress.advance(self.digest, len(data))

    def _next_chunk(self) -> bytes:
        while True:
            assert self._chunks is not None
            try:
                chunk = next(self._chunks, b"")
            except httpx.TransportError as exc:
                self._reconnect(exc)
                if len(self._buf) - self._off:
                    return b""  # a 200 resume left bytes in the buffer; the caller takes them first
                continue
            if chunk:
                self._account(chunk)
            elif self.size is not None and self._received < self.size:
                # the body ended early without a transport error: treat it as a dropped connection
                self._reconnect(httpx.RemoteProtocolError("incomplete body"))
                continue
            return chunk

    def _reconnect(self, exc: httpx.TransportError) -> None:
        if self._resp is not None:
            self._resp.close()
        self._failures += 1
        if not retriable(exc) or self._failures > self._client.retries:
            of = f" of {self.size}" if self.size is not None else ""
            raise RegistryError(f"{self._client.label}: {self.label}: {describe_transport_error(exc)} at byte "
                                f"{self._received}{of} (after {self._failures} attempts)") from None
        self._client._sleep(self._client._backoff(self._failures - 1))
        self._connect()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes, fewer only at the end of the blob."""
        if n is None or n < 0:
            parts = []
            while chunk := self.read(CHUNK * 16):
                parts.append(chunk)
            return b"".join(parts)
        parts: list[bytes] = []
        need = n
        while need > 0:
            avail = len(self._buf) - self._off
            if avail:
                if self._off == 0 and avail <= need:
                    piece = self._buf  # a whole network chunk, handed over without a copy
                else:
                    piece = self._buf[self._off:self._off + min(avail, need)]
                self._off += len(piece)
                need -= len(piece)
                parts.append(piece)
                continue
            if self._eof:
                break
            chunk = self._next_chunk()
            if chunk:
                self._buf, self._off = chunk, 0
            elif not self._buf[self._off:]:
                self._finish()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _finish(self) -> None:
        self._eof = True
        if self.size is not None and self._received != self.size:
            raise RegistryError(f"{self._client.label}: {self.label}: the registry sent {self._received} bytes, "
                                f"the manifest says {self.size}")
        actual = "sha256:" + self._hash.hexdigest() if self._hash is not None else None
        if self._writer is not None:
            self._writer.commit(actual or "")
            self._writer = None
        if self._progress is not None:
            self._progress.end(self.digest)
            self._progress = None
        if actual is not None and actual != self.digest:
            raise DigestMismatchError(f"{self.label}: blob digest mismatch: expected {self.digest}, got {actual}")

    def _cleanup(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        if self._progress is not None:
            self._progress.end(self.digest)
            self._progress = None

    def close(self) -> None:
        if not self.closed:
            self._cleanup()
        super().close()


_M_ARENA_MAX = -8  # glibc's mallopt() parameter


@functools.cache
def _one_malloc_arena() -> None:
    """Ask glibc for one malloc arena. The read-ahead thread allocates every network chunk and the
    main thread frees it: with a second arena, glibc keeps freed pages of both resident (measured:
    +10-20 MiB peak RSS on the 1.2 GB benchmark image). A no-op where the C library is not glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is not None:
            mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass


class ReadAhead(rawio.ReadAhead):
    """:class:`bilge.rawio.ReadAhead` over a registry blob: receiving from the network (and the retries
    of :class:`BlobStream`) overlaps with the layer reader's work, as reading a file overlaps through the
    page cache. Closing it closes the stream; a read blocked on the network ends at the client's timeout."""

    def __init__(self, raw: BinaryIO, chunk: int = 256 << 10, depth: int = 8) -> None:
        _one_malloc_arena()
        super().__init__(raw, chunk, depth, name="bilge-blob-readahead", abandon_wait=5)

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._raw.close()


def _content_range_start(value: str) -> int | None:
    # "bytes 100-999/1000"
    try:
        unit, _, rng = value.partition(" ")
        return int(rng.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None
