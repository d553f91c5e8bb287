"""Reading a Dockerfile safely: a regular file only, bounded in size, UTF-8 without NUL bytes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bilge.errors import BilgeError


class DockerfileParseError(BilgeError):
    """The Dockerfile does not parse; the message names the line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.reason = message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


MAX_DOCKERFILE = 16 << 20
"""Largest Dockerfile read (BuildKit's own limit on a Dockerfile is smaller); a larger input is refused."""


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not wait; only a regular file is read.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise BilgeError(f"Dockerfile not found: {p}") from None
    except IsADirectoryError:
        raise BilgeError(f"{p} is a directory, not a Dockerfile") from None
    except OSError as exc:
        raise BilgeError(f"{p}: cannot open: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise BilgeError(f"{p} is a directory, not a Dockerfile")
        raise BilgeError(f"{p} is not a regular file (a device, FIFO or socket), not a Dockerfile")
    with os.fdopen(fd, "rb") as fh:
        return decode(read_bounded(fh, str(p)), str(p))


def read_bounded(fh, name: str, limit: int = MAX_DOCKERFILE) -> bytes:
    """Read at most ``limit`` bytes of a Dockerfile; more is refused (stdin may be endless)."""
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise BilgeError(f"{name}: larger than {limit >> 20} MiB; not read as a Dockerfile")
    return data


def decode(data: bytes, name: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DockerfileParseError(name, line, "not UTF-8 text") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DockerfileParseError(name, line, "binary data (NUL byte) in a Dockerfile")
    return text
