"""Provider tokens that prove their own shape: checksums and structures a value must have (issue 12).

* **npm** access tokens (``npm_`` + 36 characters, the format npm announced in September 2021 and the
  only one since legacy tokens were removed in November 2025) are built like GitHub's: 30 random
  base-62 characters, then six base-62 digits of their CRC32. The announcement's own example
  ``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`` checks.
* **PyPI** API tokens are ``pypi-`` + a macaroon in libmacaroons' version-2 binary format, base64url
  without padding (Warehouse serialises with pymacaroons): version byte 2, a location packet
  (``pypi.org``), an identifier packet, an end-of-section byte, caveat sections each closed by an
  end-of-section byte, an empty section, then a 32-byte HMAC-SHA256 signature packet and nothing
  after it. The signature cannot be checked without PyPI's key; the structure can, and a value that
  does not parse was never issued by PyPI.

Each ``judge_*`` returns ``()`` to keep a match as it is, or ``("low", why)`` to demote it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import zlib

from bilge.secrets.precision import base62

_NPM = re.compile(r"npm_([A-Za-z0-9]{30})([A-Za-z0-9]{6})")

NPM_NOT_ISSUED = "checksum does not match: npm never issued this value (an example or a made-up token)"


def npm_checksum_ok(token: str) -> bool | None:
    """True/False for ``npm_`` + 36 base-62 characters; None for other shapes."""
    m = _NPM.fullmatch(token)
    if m is None:
        return None
    return base62(zlib.crc32(m.group(1).encode("ascii"))) == m.group(2)


def npm_token(random_part: str) -> str:
    """A token of npm's format with a valid checksum (for tests)."""
    if len(random_part) != 30 or not random_part.isalnum() or not random_part.isascii():
        raise ValueError("npm tokens carry 30 random base-62 characters")
    return "npm_" + random_part + base62(zlib.crc32(random_part.encode("ascii")))


def judge_npm(secret: str) -> tuple[str, str] | tuple[()]:
    if npm_checksum_ok(secret) is False:
        return ("low", NPM_NOT_ISSUED)
    return ()


# ---------------------------------------------------------------------------------------------
# PyPI: a version-2 macaroon

_EOS, _LOCATION, _IDENTIFIER, _VID, _SIGNATURE = 0, 1, 2, 4, 6
_MAX_SECTIONS = 64


class _Malformed(ValueError):
    pass


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    for i in range(pos, min(len(data), pos + 5)):
        b = data[i]
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, i + 1
        shift += 7
    raise _Malformed("a length runs past the end")


def _packet(data: bytes, pos: int) -> tuple[int, bytes, int]:
    field, pos = _uvarint(data, pos)
    if field == _EOS:
        return field, b"", pos
    size, pos = _uvarint(data, pos)
    if pos + size > len(data):
        raise _Malformed("a field runs past the end")
    return field, data[pos:pos + size], pos + size


def _section(data: bytes, pos: int) -> tuple[list[tuple[int, bytes]], int]:
    out: list[tuple[int, bytes]] = []
    last = -1
    while True:
        if pos >= len(data):
            raise _Malformed("a section is not closed")
        field, value, pos = _packet(data, pos)
        if field == _EOS:
            return out, pos
        if field <= last or field not in (_LOCATION, _IDENTIFIER, _VID):
            raise _Malformed(f"unexpected field {field}")
        last = field
        out.append((field, value))


def macaroon_problem(raw: bytes, location: bytes = b"pypi.org") -> str | None:
    """Why ``raw`` is not a version-2 macaroon issued at ``location`` (None when it is one)."""
    try:
        if raw[:1] != b"\x02":
            return "not a version-2 macaroon"
        header, pos = _section(raw, 1)
        if [f for f, _ in header] != [_LOCATION, _IDENTIFIER] or header[0][1] != location:
            return f"the macaroon's header is not location {location.decode()} + identifier"
        if not header[1][1]:
            return "the macaroon has an empty identifier"
        for _ in range(_MAX_SECTIONS):
            caveat, pos = _section(raw, pos)
            if not caveat:
                break
            if caveat[-1][0] != _IDENTIFIER and [f for f, _ in caveat][-2:] != [_IDENTIFIER, _VID]:
                return "a caveat without an identifier"
        else:
            return "too many caveats"
        field, sig, pos = _packet(raw, pos)
    except _Malformed as exc:
        return f"the macaroon does not parse: {exc}"
    if field != _SIGNATURE or len(sig) != 32:
        return "no 32-byte signature where the macaroon ends"
    if pos != len(raw):
        return "bytes after the macaroon's signature"
    return None


def _b64url_strict(text: str) -> bytes | None:
    if len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # canonical: the unused low bits of the last character are zero (a real encoder writes them so)
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != text:
        return None
    return raw


def pypi_problem(token: str) -> str | None:
    """Why a ``pypi-…`` value is not a token PyPI issued (None when its structure is sound)."""
    if not token.startswith("pypi-"):
        return "no pypi- prefix"
    raw = _b64url_strict(token[5:])
    if raw is None:
        return "not base64url"
    return macaroon_problem(raw)


def judge_pypi(secret: str) -> tuple[str, str] | tuple[()]:
    why = pypi_problem(secret)
    if why is not None:
        return ("low", f"not a PyPI token's structure ({why}): PyPI never issued this value")
    return ()


def _append(data: bytearray, field: int, value: bytes | None = None) -> None:
    def varint(n: int) -> None:
        while n >= 0x80:
            data.append((n & 0x7F) | 0x80)
            n >>= 7
        data.append(n)

    varint(field)
    if field != _EOS:
        assert value is not None
        varint(len(value))
        data.extend(value)


def pypi_token(identifier: str, key: bytes, caveats: tuple[str, ...] = ()) -> str:
    """A token of PyPI's format (a signed version-2 macaroon at pypi.org), for tests.

    The signature is the macaroon chain libmacaroons defines: HMAC-SHA256 of the identifier under a
    key derived from ``key``, then of each caveat under the previous signature.
    """
    sig = hmac.new(hmac.new(b"macaroons-key-generator", key, hashlib.sha256).digest(),
                   identifier.encode(), hashlib.sha256).digest()
    data = bytearray(b"\x02")
    _append(data, _LOCATION, b"pypi.org")
    _append(data, _IDENTIFIER, identifier.encode())
    _append(data, _EOS)
    for caveat in caveats:
        _append(data, _IDENTIFIER, caveat.encode())
        _append(data, _EOS)
        sig = hmac.new(sig, caveat.encode(), hashlib.sha256).digest()
    _append(data, _EOS)
    _append(data, _SIGNATURE, sig)
    return "pypi-" + base64.urlsafe_b64encode(bytes(data)).decode("ascii").rstrip("=")
