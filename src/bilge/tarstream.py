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
from zlib import adler32 as _adler32

BLOCK = 512
_HEADER = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12x")
_ZERO_BLOCK = bytes(BLOCK)
_PAD = b" \0"
_EXTENDED = frozenset((b"x", b"X", b"g", b"L", b"K"))


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


def _byte_sum(block: bytes) -> int:
    """sum(block) of a 512-byte header at C speed: adler32's low half is 1 + the byte sum mod 65521,
    exact for 256 bytes (at most 65280)."""
    return (_adler32(block[:256]) & 0xFFFF) + (_adler32(block[256:]) & 0xFFFF) - 2


def _check_sum(block: bytes, chksum: bytes) -> None:
    expected = _num(chksum)
    actual = _byte_sum(block) - sum(chksum) + 8 * 32
    if expected != actual:  # some old tars summed signed chars; tarfile accepts both
        high = sum(1 for b in block[:148] + block[156:] if b > 127)
        if expected != actual - 256 * high:
            raise TarFormatError("tar header checksum mismatch: not a tar stream, or corrupt")


def _read_block(fh: BinaryIO, pos: int) -> bytes:
    if fh.tell() != pos:
        fh.seek(pos)
    return fh.read(BLOCK)


def iter_members(fh: BinaryIO) -> Iterator[Member]:
    """Yield members of the tar stream ``fh`` (which must offer read/seek/tell, seek forward only).

    Between two members the caller may read the current body at ``offset_data``; whatever it did not
    read is skipped by seeking. Ends at the first zero block (the end-of-archive marker), as Docker's
    and tarfile's readers do. A stream with ``block_at(pos)`` (``bilge.layers.ForwardStream``) is
    asked for each header in one call.
    """
    pos = fh.tell()
    block_at = getattr(fh, "block_at", None)
    if block_at is None:
        def block_at(at: int) -> bytes:
            return _read_block(fh, at)
    global_pax: dict[str, str] = {}
    pending_pax: dict[str, str] = {}
    long_name: str | None = None
    long_link: str | None = None
    unpack = _HEADER.unpack
    while True:
        block = block_at(pos)
        if len(block) < BLOCK:
            if not block:
                if pos == 0:
                    return  # a zero-length layer
                raise TarFormatError("unexpected end of tar stream (missing end-of-archive marker)")
            raise TarFormatError("unexpected end of tar stream inside a header")
        if block == _ZERO_BLOCK:
            return
        (name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic, _version, uname, gname,
         devmajor, devminor, prefix) = unpack(block)
        try:  # the checksum inline (see _byte_sum); _check_sum says what is wrong, or accepts signed sums
            ok = int(chksum.strip(_PAD) or b"0", 8) == (
                (_adler32(block[:256]) & 0xFFFF) + (_adler32(block[256:]) & 0xFFFF) + 254 - sum(chksum))
        except ValueError:
            ok = False
        if not ok:
            _check_sum(block, chksum)
        try:  # the common case (octal digits, NUL- or space-terminated) inline; _num for the rest
            body_size = int(size.strip(_PAD) or b"0", 8)
            mode_i = int(mode.strip(_PAD) or b"0", 8)
            uid_i = int(uid.strip(_PAD) or b"0", 8)
            gid_i = int(gid.strip(_PAD) or b"0", 8)
            mtime_i = int(mtime.strip(_PAD) or b"0", 8)
        except ValueError:  # base-256 or invalid: the other fields are judged only for a real member
            body_size, mode_i = _num(size), None
        if body_size < 0:
            raise TarFormatError(f"negative member size ({body_size}) in tar header")
        data_at = pos + BLOCK
        pos = data_at + ((body_size + BLOCK - 1) // BLOCK) * BLOCK
        if typeflag in _EXTENDED:
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
        if mode_i is None:
            mode_i, uid_i, gid_i, mtime_i = _num(mode), _num(uid), _num(gid), _num(mtime)
        pax = {**global_pax, **pending_pax} if global_pax else pending_pax
        full = name.partition(b"\0")[0].decode("utf-8", "surrogateescape")
        if magic == b"ustar\0" and prefix[0:1] not in (b"\0", b""):
            full = _str(prefix) + "/" + full
        link = linkname.partition(b"\0")[0].decode("utf-8", "surrogateescape") if linkname[0] else ""
        if long_name is not None:
            full = long_name
        if long_link is not None:
            link = long_link
        device = typeflag == b"3" or typeflag == b"4"
        member = Member(
            full, typeflag or b"0", body_size, mode_i, uid_i, gid_i,
            uname.partition(b"\0")[0].decode("utf-8", "surrogateescape") if uname[0] else "",
            gname.partition(b"\0")[0].decode("utf-8", "surrogateescape") if gname[0] else "",
            mtime_i, link, _num(devmajor) if device else 0, _num(devminor) if device else 0, data_at, pax,
        )
        if uid_i < 0 or gid_i < 0:
            raise TarFormatError(f"negative uid/gid ({uid_i}/{gid_i}) in tar header")
        if pax:
            _apply_pax(member, pax)
            pos = data_at + ((member.size + BLOCK - 1) // BLOCK) * BLOCK
        pending_pax = {}  # a new dict: the member keeps its own
        long_name = long_link = None
        yield member


def _apply_pax(member: Member, pax: dict[str, str]) -> None:
    if "path" in pax:
        member.name = pax["path"]
    if "linkpath" in pax:
        member.linkname = pax["linkpath"]
    if "size" in pax:
        member.size = _pax_int(pax, "size")
    for key in ("uid", "gid"):
        if key in pax:
            setattr(member, key, _pax_int(pax, key))
    if "mtime" in pax:
        member.mtime = _pax_time(pax, "mtime")
    if "uname" in pax:
        member.uname = pax["uname"]
    if "gname" in pax:
        member.gname = pax["gname"]


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
