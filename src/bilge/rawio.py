"""Small read-only raw streams: subclasses write ``read(n)``; the rest of the io protocol follows."""

from __future__ import annotations

import io
import queue
import threading
from typing import BinaryIO


class RawReader(io.RawIOBase):
    """A readable raw stream whose only primitive is ``read(n)``."""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class WindowReader(RawReader):
    """A seekable reader over ``size`` bytes; subclasses read at ``self._pos`` and advance it."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._pos = 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos


class ReadAhead(RawReader):
    """Reads a stream in a helper thread, up to ``depth`` pieces of ``piece`` bytes ahead of the caller.

    What the stream does below (decompression: ISA-L and zstd release the GIL; receiving from the
    network) then runs on another core while the caller's thread parses and visits, instead of taking
    turns with it. Memory stays bounded at ``depth`` pieces. An exception raised by the stream is raised
    again by the read that reaches it. :meth:`close` stops the thread; when reading stopped early (an
    error, Ctrl-C) it waits at most ``abandon_wait`` seconds for the read under way -- a stalled
    network must not hold up the exit; the daemon thread's later error goes nowhere.
    """

    def __init__(self, raw: BinaryIO, piece: int = 1 << 20, depth: int = 4, *, name: str = "bilge-read-ahead",
                 abandon_wait: float = 2.0) -> None:
        super().__init__()
        self._raw = raw
        self._piece = piece
        self._abandon_wait = abandon_wait
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._buf = b""
        self._off = 0
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._raw.read(self._piece)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, raised there
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def _next(self) -> bool:
        """Take the next piece; False at the end of the stream."""
        if self._done:
            return False
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._finish()
            raise item
        if not item:
            self._finish()
            return False
        self._buf, self._off = item, 0
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._off:]]
            while self._next():
                parts.append(self._buf)
            self._buf, self._off = b"", 0
            return b"".join(parts)
        if self._off >= len(self._buf) and not self._next():
            return b""
        off = self._off
        if off == 0 and n >= len(self._buf):
            data, self._buf = self._buf, b""
            return data
        data = self._buf[off:off + n]
        self._off = off + len(data)
        return data

    def _finish(self, wait: float | None = None) -> None:
        self._done = True
        self._buf, self._off = b"", 0
        self._stop.set()
        while True:  # unblock a put waiting for room
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(wait)

    def close(self) -> None:
        if not self._done:
            self._finish(self._abandon_wait)
        super().close()
