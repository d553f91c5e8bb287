"""Small read-only raw streams: subclasses write ``read(n)``; the rest of the io protocol follows."""

from __future__ import annotations

import io


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
