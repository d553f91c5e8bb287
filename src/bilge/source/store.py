"""Blob stores: named byte ranges in an OCI layout directory or inside a (possibly gzipped) tar archive."""

from __future__ import annotations

import os
import posixpath
import tarfile
from typing import BinaryIO

from bilge.errors import ImageFormatError, NotAnImageError
from bilge.rawio import WindowReader
from bilge.tarstream import norm_member


class SubFile(WindowReader):
    """A read-only, seekable window [offset, offset+size) of a file descriptor, read with pread."""

    def __init__(self, fd: int, offset: int, size: int, name: str = "") -> None:
        super().__init__(size)
        self._fd, self._offset = fd, offset
        self.name = name

    def read(self, n: int = -1) -> bytes:
        remaining = self._size - self._pos
        if remaining <= 0:
            return b""
        if n is None or n < 0 or n > remaining:
            n = remaining
        data = os.pread(self._fd, n, self._offset + self._pos)
        self._pos += len(data)
        if not data and n:
            raise ImageFormatError(f"{self.name or 'blob'}: unexpected end of file (truncated archive?)")
        return data

    @property
    def size(self) -> int:
        return self._size


class Store:
    """Named files of an image container (archive members or layout files)."""

    description = ""

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        if self.size(name) > limit:
            raise ImageFormatError(f"{self.description}: {name} is implausibly large for a JSON document")
        with self.open(name) as fh:
            return fh.read()

    def names(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class DirStore(Store):
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.description = root

    def _path(self, name: str) -> str:
        name = norm_member(name)
        path = os.path.realpath(os.path.join(self.root, name))
        if path != self.root and not path.startswith(self.root + os.sep):
            raise ImageFormatError(f"{self.description}: {name!r} points outside the layout")
        return path

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def size(self, name: str) -> int:
        return os.path.getsize(self._path(name))

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise ImageFormatError(f"{self.description}: missing {name}") from None

    def names(self) -> list[str]:
        out = []
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                out.append(os.path.relpath(os.path.join(dirpath, f), self.root).replace(os.sep, "/"))
        return out


GUNZIP_RATIO = 100
GUNZIP_FLOOR = 2 << 30


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class TarStore(Store):
    """Random access to the members of an uncompressed tar file (a gzipped one is unpacked to a temp file)."""

    def __init__(self, path: str) -> None:
        self.description = path
        with open(path, "rb") as fh:
            magic = fh.read(2)
        self._fd = self._gunzip(path) if magic == b"\x1f\x8b" else os.open(path, os.O_RDONLY)
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            with os.fdopen(os.dup(self._fd), "rb") as fh:
                fh.seek(0)
                with tarfile.open(fileobj=fh, mode="r:") as tf:
                    for info in tf:
                        name = norm_member(info.name)
                        if name:
                            self._members[name] = info
        except tarfile.ReadError as exc:
            self.close()
            raise NotAnImageError(f"{path}: not a readable tar archive ({exc})") from None
        except (EOFError, tarfile.TarError) as exc:
            self.close()
            raise ImageFormatError(f"{path}: truncated or corrupt tar archive ({exc})") from None

    def _gunzip(self, path: str) -> int:
        """Unpack a gzipped archive into an anonymous temporary file and return its descriptor.

        The file is unlinked the moment it is created (with signals held, through :mod:`bilge.cleanup`),
        so nothing is left in $TMPDIR however the run ends, even on SIGKILL. The copy is bounded:
        more than ``max(GUNZIP_FLOOR, GUNZIP_RATIO x the compressed size)`` is refused as a bomb."""
        import isal.igzip as igzip

        from bilge import cleanup

        fd, tmp = cleanup.mkstemp(cleanup.tempdir(), "bilge-", ".tar")
        with cleanup.signals_held():
            cleanup.remove(tmp)
        limit = max(GUNZIP_FLOOR, GUNZIP_RATIO * os.path.getsize(path))
        try:
            written = 0
            with igzip.open(path, "rb") as src:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > limit:
                        raise ImageFormatError(f"{path}: unpacks to more than {limit >> 20} MiB "
                                               f"({GUNZIP_RATIO}x its size): refused as a decompression bomb")
                    _write_all(fd, chunk)
        except (OSError, EOFError) as exc:
            os.close(fd)
            raise ImageFormatError(f"{path}: corrupt or truncated gzip archive ({exc})") from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _resolve(self, name: str) -> tarfile.TarInfo:
        name = norm_member(name)
        for _ in range(16):
            info = self._members.get(name)
            if info is None:
                raise ImageFormatError(f"{self.description}: missing member {name}")
            if info.issym():
                name = norm_member(posixpath.join(posixpath.dirname(name), info.linkname))
                continue
            if info.islnk():
                name = norm_member(info.linkname)
                continue
            return info
        raise ImageFormatError(f"{self.description}: member {name} is a link loop")

    def exists(self, name: str) -> bool:
        try:
            return self._resolve(name).isfile()
        except ImageFormatError:
            return False

    def size(self, name: str) -> int:
        return self._resolve(name).size

    def open(self, name: str) -> BinaryIO:
        info = self._resolve(name)
        if not info.isfile():
            raise ImageFormatError(f"{self.description}: {name} is not a regular file")
        if info.sparse:  # pragma: no cover - never seen in image archives
            raise ImageFormatError(f"{self.description}: {name} is a sparse member")
        return SubFile(self._fd, info.offset_data, info.size, name)  # type: ignore[return-value]

    def names(self) -> list[str]:
        return list(self._members)

    def close(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None  # type: ignore[assignment]
