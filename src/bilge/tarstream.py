"""A fast, forward-only reader of tar headers (ustar, GNU and PAX), for layer streams.

Python's ``tarfile`` parses every header field through several layers of helpers and wraps every
body in a buffered reader; on images with tens of thousands of files that costs more than the
decompression. This reader parses the fixed ustar fields with one ``struct`` call, handles the
extensions layers use (PAX ``x``/``g`` records, GNU ``L``/``K`` long names, base-256 numbers,
the ustar ``prefix``), verifies each header checksum, and hands out bodies by offset so that the
caller can read them or skip them. Anything it does not understand (GNU sparse files, multi-volume
archives) is reported as an error rather than guessed at.
"""

from __future__ import annotations

import math
import posixpath
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

BLOCK = 512
_HEADER = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12x")


class TarFormatError(Exception):
    """The stream is not a tar archive we can read."""


@dataclass(slots=True)
class Member:
    name: str
    type: bytes  # the raw typeflag: b"0" file, b"5" dir, b"2" symlink, b"1" hardlink, ...
    size: int
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    linkname: str
    devmajor: int
    devminor: int
    offset_data: int
    pax: dict[str, str] = field(default_factory=dict)


def _num(field_: bytes) -> int:
    if field_ and field_[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field_[1:], "big")
        if field_[0] == 0xFF:
            value -= 1 << (8 * (len(field_) - 1))
        return value
    field_ = field_.strip(b" \0")
    if not field_:
        return 0
    try:
        return int(field_, 8)
    except ValueError:
        raise TarFormatError(f"invalid number field {field_[:12]!r} in tar header") from None


def _pax_int(pax: dict[str, str], key: str) -> int:
    """A PAX record that must be a non-negative decimal integer (size, uid, gid)."""
    value = pax[key]
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise TarFormatError(f"invalid PAX {key} record {value[:24]!r} in tar header (not a non-negative integer)")
    return int(value)


def _pax_time(pax: dict[str, str], key: str) -> float:
    """A PAX time record (``mtime``): a finite decimal number of seconds, possibly negative."""
    value = pax[key]
    try:
        number = float(value) if value.isascii() and len(value) <= 40 else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or any(c not in "0123456789.-" for c in value):
        raise TarFormatError(f"invalid PAX {key} record {value[:24]!r} in tar header (not a finite number)")
    return number


def _str(field_: bytes) -> str:
    return field_.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("invalid PAX extended header") from None
        if length <= 0:
            raise TarFormatError("invalid PAX extended header record length")
        record = data[space + 1 : pos + length - 1]  # drop the trailing newline
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def iter_members(fh: BinaryIO) -> Iterator[Member]:
    """Yield members of the tar stream ``fh`` (which must offer read/seek/tell, seek forward only).

    Between two members the caller may read the current body at ``offset_data``; whatever it did not
    read is skipped by seeking. Ends at the first zero block (the end-of-archive marker), as Docker's
    and tarfile's readers do.
    """
    pos = fh.tell()
    global_pax: dict[str, str] = {}
    pending_pax: dict[str, str] = {}
    long_name: str | None = None
    long_link: str | None = None
    while True:
        if fh.tell() != pos:
            fh.seek(pos)
        block = fh.read(BLOCK)
        if not block:
            if pos == 0:
                return  # a zero-length layer
            raise TarFormatError("unexpected end of tar stream (missing end-of-archive marker)")
        if len(block) < BLOCK:
            raise TarFormatError("unexpected end of tar stream inside a header")
        if block.count(0) == BLOCK:
            return
        fields = _HEADER.unpack(block)
        (name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic, _version, uname, gname,
         devmajor, devminor, prefix) = fields
        expected = _num(chksum)
        actual = sum(block) - sum(block[148:156]) + 8 * 32
        if expected != actual:  # some old tars summed signed chars; tarfile accepts both
            high = sum(1 for b in block[:148] + block[156:] if b > 127)
            if expected != actual - 256 * high:
                raise TarFormatError("tar header checksum mismatch: not a tar stream, or corrupt")
        body_size = _num(size)
        if body_size < 0:
            raise TarFormatError(f"negative member size ({body_size}) in tar header")
        data_at = pos + BLOCK
        pos = data_at + ((body_size + BLOCK - 1) // BLOCK) * BLOCK
        if typeflag in (b"x", b"X", b"g", b"L", b"K"):
            data = fh.read(body_size)
            if len(data) != body_size:
                raise TarFormatError("unexpected end of tar stream inside an extended header")
            if typeflag in (b"x", b"X"):
                pending_pax.update(_parse_pax(data))
            elif typeflag == b"g":
                global_pax.update(_parse_pax(data))
            elif typeflag == b"L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            else:
                long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        if typeflag == b"S":
            raise TarFormatError("GNU sparse files in a layer are not supported")
        if typeflag == b"M" or typeflag == b"V":
            raise TarFormatError("multi-volume tar archives are not supported")
        pax = {**global_pax, **pending_pax} if global_pax else pending_pax
        full = _str(name)
        if magic == b"ustar\0" and prefix[0:1] not in (b"\0", b""):
            full = _str(prefix) + "/" + full
        link = _str(linkname)
        if long_name is not None:
            full = long_name
        if long_link is not None:
            link = long_link
        member = Member(
            name=pax.get("path", full), type=typeflag or b"0", size=body_size, mode=_num(mode),
            uid=_num(uid), gid=_num(gid), uname=_str(uname), gname=_str(gname), mtime=_num(mtime),
            linkname=pax.get("linkpath", link),
            devmajor=_num(devmajor) if typeflag in (b"3", b"4") else 0,
            devminor=_num(devminor) if typeflag in (b"3", b"4") else 0,
            offset_data=data_at, pax=pax,
        )
        if member.uid < 0 or member.gid < 0:
            raise TarFormatError(f"negative uid/gid ({member.uid}/{member.gid}) in tar header")
        if pax:
            if "size" in pax:
                member.size = _pax_int(pax, "size")
                pos = data_at + ((member.size + BLOCK - 1) // BLOCK) * BLOCK
            for key in ("uid", "gid"):
                if key in pax:
                    setattr(member, key, _pax_int(pax, key))
            if "mtime" in pax:
                member.mtime = _pax_time(pax, "mtime")
            if "uname" in pax:
                member.uname = pax["uname"]
            if "gname" in pax:
                member.gname = pax["gname"]
        pending_pax = {}
        long_name = long_link = None
        yield member


class BodyStream:
    """Read exactly one member's body from the tar stream, starting at its data offset."""

    __slots__ = ("_fh", "_start", "_size", "_done")

    def __init__(self, fh: BinaryIO, start: int, size: int) -> None:
        self._fh, self._start, self._size, self._done = fh, start, size, 0

    def read(self, n: int = -1) -> bytes:
        remaining = self._size - self._done
        if remaining <= 0:
            return b""
        if n is None or n < 0 or n > remaining:
            n = remaining
        at = self._start + self._done
        if self._fh.tell() != at:
            self._fh.seek(at)
        data = self._fh.read(n)
        self._done += len(data)
        return data


def norm_member(name: str) -> str:
    """The one tar member-name normaliser of archives: ``./a//b/`` -> ``a/b``, root-relative ('' for the root).

    (Layer entries go through :func:`bilge.layers.normalize`, which also reports escapes and absolute names.)"""
    while name.startswith("./"):
        name = name[2:]
    name = posixpath.normpath("/" + name).lstrip("/")
    return "" if name == "." else name
