"""The body of the current tar entry of a layer stream, shared by every reader of the entry.

:class:`bilge.layers.Entry` hands out readers of one :class:`Body`: the layer is read once, forward,
and what several visitors read of a body is read from the layer once.
"""

from __future__ import annotations

from typing import BinaryIO

from bilge.errors import ImageFormatError
from bilge.rawio import WindowReader

CHUNK = 1 << 20
FULL_CACHE_LIMIT = 64 << 20  # bodies up to this size can be read by any number of visitors
HEAD_CACHE = 1 << 20  # of larger bodies, the first MiB stays readable for everyone
WHOLE_BODY = 1 << 20  # bodies up to this size are read in one piece on first use
STREAMED = "a large file body was already streamed past this point by another reader"


class StreamedPast(RuntimeError):
    """Bytes of a body that an earlier reader streamed past and the cache did not keep."""


class Body:
    """The body of the current tar entry, filled lazily and shared by every reader of the entry.

    Bodies up to FULL_CACHE_LIMIT stay whole in memory while the entry is current, so any number of
    visitors can read them. Of a larger body only the first HEAD_CACHE bytes stay; past that, readers
    must go forward (one streaming consumer, e.g. a rewrite copying the file). A body up to
    WHOLE_BODY is read in one piece on first use and handed out without copying when a reader asks
    for all of it. The last reader of a large body may :meth:`skim` it: read forward, keeping nothing.
    """

    def __init__(self, source: BinaryIO, size: int) -> None:
        self._src = source
        self.size = size
        self._small = size <= FULL_CACHE_LIMIT
        self._head: bytes | bytearray = b""
        self._win = bytearray()
        self._win_start = 0
        self._consumed = 0
        self._skimmed = False  # skim() passed bytes it did not keep: past the head, nothing can be read again

    def read_at(self, pos: int, n: int) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, pos + n)
        if pos >= end:
            return b""
        if not self._consumed and self._small and self.size <= WHOLE_BODY:
            self._whole()
        head = self._head
        if end > len(head) and self._skimmed:
            raise StreamedPast(STREAMED)
        if end <= len(head):
            if pos == 0 and end == len(head) and type(head) is bytes:
                return head
            return bytes(head[pos:end])
        self._fill(end, pos)
        head = self._head
        if end <= len(head):
            return bytes(head[pos:end])
        out = b""
        if pos < len(head):
            out = bytes(head[pos:])
            pos = len(head)
        if pos < self._win_start:
            raise StreamedPast(STREAMED)
        return out + bytes(self._win[pos - self._win_start:end - self._win_start])

    def skim(self, pos: int, n: int) -> bytes:
        """Bytes ``[pos, pos + n)`` (fewer at the end of the body) for the last reader of a body: what lies
        between the bytes read so far and ``pos`` is passed over and not kept, nor is what this returns.
        Afterwards other readers can still read the cached head; anything beyond it raises RuntimeError.
        Raises :class:`StreamedPast` (a RuntimeError), too, for bytes already passed that were not kept."""
        end = min(self.size, pos + n)
        if end <= pos:
            return b""
        out = b""
        if pos < self._consumed:
            out = self.read_at(pos, min(end, self._consumed) - pos)
            pos += len(out)
        if pos >= end:
            return out
        self._skimmed = True
        self._win = bytearray()
        while self._consumed < pos:
            skipped = self._src.read(min(pos - self._consumed, CHUNK * 4))
            if not skipped:
                raise ImageFormatError("unexpected end of layer inside a file body (truncated layer?)")
            self._consumed += len(skipped)
        parts = [out] if out else []
        while self._consumed < end:
            chunk = self._src.read(end - self._consumed)
            if not chunk:
                raise ImageFormatError("unexpected end of layer inside a file body (truncated layer?)")
            self._consumed += len(chunk)
            parts.append(chunk)
        self._win_start = self._consumed
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _whole(self) -> None:
        data = self._src.read(self.size)
        while len(data) < self.size:
            more = self._src.read(self.size - len(data))
            if not more:
                raise ImageFormatError("unexpected end of layer inside a file body (truncated layer?)")
            data += more
        self._head = data
        self._consumed = self.size

    def _fill(self, end: int, pos: int) -> None:
        if not self._small and self._win and pos > self._win_start:
            drop = min(pos, self._consumed) - self._win_start
            del self._win[:drop]
            self._win_start += drop
        if type(self._head) is bytes:
            self._head = bytearray(self._head)
        head = self._head
        while self._consumed < end:
            chunk = self._src.read(min(max(end - self._consumed, 1 << 16), CHUNK))
            if not chunk:
                raise ImageFormatError("unexpected end of layer inside a file body (truncated layer?)")
            self._consumed += len(chunk)
            room = (self.size if self._small else HEAD_CACHE) - len(head)
            if room > 0:
                head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                if not self._win:
                    self._win_start = self._consumed - len(chunk)
                self._win += chunk


class BodyReader(WindowReader):
    """An independent, seekable reader over an entry's body (position is per reader)."""

    def __init__(self, body: Body) -> None:
        super().__init__(body.size)
        self._body = body

    def read(self, n: int = -1) -> bytes:
        data = self._body.read_at(self._pos, -1 if n is None or n < 0 else n)
        self._pos += len(data)
        return data


