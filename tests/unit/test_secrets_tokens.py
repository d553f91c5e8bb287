"""Provider tokens that prove their shape (issue 12): npm's CRC32 checksum, PyPI's macaroon structure.

Tokens are generated here in the providers' formats (npm: 30 random base-62 characters + six base-62
digits of their CRC32, as GitHub's; PyPI: ``pypi-`` + a signed version-2 macaroon at pypi.org), then
changed by one character: a real-format token stays critical, a changed one is low with the reason.
The checksum is checked against zlib's CRC32 and the macaroon against an independent parse below.
"""

from __future__ import annotations

import base64
import random
import string
import zlib

import pytest

from bilge.secrets.precision import base62
from bilge.secrets.rules import load_ruleset
from bilge.secrets.textscan import FILE_CONFIG, Scanner
from bilge.secrets.tokens import macaroon_problem, npm_checksum_ok, npm_token, pypi_problem, pypi_token

RNG = random.Random(1212)
ALNUM = string.ascii_letters + string.digits
SCANNER = Scanner(load_ruleset())


def rnd(n: int, alphabet: str = ALNUM) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def flip(token: str, i: int, alphabet: str = ALNUM) -> str:
    return token[:i] + RNG.choice([c for c in alphabet if c != token[i]]) + token[i + 1:]


def scan(value: str) -> list[tuple[str, str, str]]:
    return [(h.rule_id, h.severity, h.note) for h in SCANNER.scan(f"NPM_TOKEN={value}\n".encode(), FILE_CONFIG)]


# --- npm -----------------------------------------------------------------------------------------

def test_npm_announcement_example_checks():
    # the example in npm's announcement of the format (GitHub changelog, 2021-09-23): 30 + 6 checksum
    assert npm_checksum_ok("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") is True


def test_npm_token_checksum_is_crc32_in_base62():
    body = rnd(30)
    crc = zlib.crc32(body.encode())
    digits = []
    for _ in range(6):
        crc, d = divmod(crc, 62)
        digits.append((string.digits + string.ascii_uppercase + string.ascii_lowercase)[d])
    assert npm_token(body) == "npm_" + body + "".join(reversed(digits))


@pytest.mark.parametrize("seed", range(5))
def test_npm_token_critical_and_every_single_flip_low(seed):
    token = npm_token(rnd(30))
    assert scan(token) == [("npm-token", "critical", "")]
    for i in range(4, len(token)):  # every character after the prefix, random part and checksum alike
        changed = flip(token, i)
        [(rule, severity, note)] = scan(changed)
        assert (rule, severity) == ("npm-token", "low"), changed
        assert note.startswith("checksum does not match: npm never issued")


def test_npm_wrong_shapes_are_not_judged():
    assert npm_checksum_ok("npm_" + rnd(35)) is None
    assert npm_checksum_ok("gh" + "p_" + rnd(36)) is None


# --- PyPI ----------------------------------------------------------------------------------------

def uuid4ish() -> str:
    h = "0123456789abcdef"
    return f"{rnd(8, h)}-{rnd(4, h)}-4{rnd(3, h)}-a{rnd(3, h)}-{rnd(12, h)}"


def _independent_parse(token: str) -> list[tuple[int, bytes]]:
    """Every (field, value) packet of the macaroon, EOS as (0, b''), read without bilge's parser."""
    raw = base64.urlsafe_b64decode(token[5:] + "=" * (-len(token[5:]) % 4))
    assert raw[0] == 2
    out, i = [], 1
    while i < len(raw):
        field = raw[i]
        i += 1
        if field == 0:
            out.append((0, b""))
            continue
        size = raw[i]  # every packet here is shorter than 128 bytes: one-byte lengths
        out.append((field, raw[i + 1:i + 1 + size]))
        i += 1 + size
    return out


def test_pypi_token_is_a_v2_macaroon_at_pypi_org():
    ident = uuid4ish()
    token = pypi_token(ident, rnd(32).encode(), ('[1,["demo-project"]]',))
    assert token.startswith("pypi-AgEIcHlwaS5vcmc")  # the prefix every scanner keys on
    packets = _independent_parse(token)
    assert packets[:3] == [(1, b"pypi.org"), (2, ident.encode()), (0, b"")]
    assert packets[3:6] == [(2, b'[1,["demo-project"]]'), (0, b""), (0, b"")]
    assert packets[6][0] == 6 and len(packets[6][1]) == 32 and len(packets) == 7
    assert pypi_problem(token) is None


@pytest.mark.parametrize("caveats", [(), ('{"version": 1, "permissions": "user"}',),
                                     ('[1,["demo"]]', '[2,["0f2c1c1e-9a0b-4f1e-8c55-8f1f0f3d2b11"]]')])
def test_pypi_token_critical(caveats):
    token = pypi_token(uuid4ish(), rnd(32).encode(), caveats)
    assert scan(token) == [("pypi-token", "critical", "")]


def test_pypi_random_tail_truncation_and_tampering_are_low():
    token = pypi_token(uuid4ish(), rnd(32).encode(), ('[1,["demo-project"]]',))
    body = token[len("pypi-AgEIcHlwaS5vcmc"):]
    cases = {
        "random tail": "pypi-AgEIcHlwaS5vcmc" + rnd(len(body), ALNUM + "-_"),
        "truncated signature": token[:-8],
        "bytes after the signature": token + "AAAA",
        # the identifier's length byte (one character of the base64 text) changed
        "identifier length flipped": token[:20] + ("D" if token[20] != "D" else "E") + token[21:],
    }
    for what, value in cases.items():
        [(rule, severity, note)] = scan(value)
        assert (rule, severity) == ("pypi-token", "low"), what
        assert note.startswith("not a PyPI token's structure (") and "PyPI never issued" in note, (what, note)


def test_pypi_one_flip_in_the_structure_is_caught_but_not_in_the_signature():
    """A macaroon carries no checksum: a flipped character is caught only where it breaks the
    structure (a field type, a length, the location); one inside the signature is not (that needs
    PyPI's key). Measured over every position of a token."""
    token = pypi_token(uuid4ish(), rnd(32).encode(), ('[1,["demo-project"]]',))
    raw_len = len(base64.urlsafe_b64decode(token[5:] + "=="))
    sig_start_char = 5 + ((raw_len - 32) * 4) // 3 + 1  # characters wholly inside the signature
    caught_in_header = 0
    for i in range(5, len(token)):
        changed = flip(token, i, ALNUM + "-_")
        bad = pypi_problem(changed) is not None
        if i >= sig_start_char and i < len(token) - 1:
            assert not bad, i  # signature bytes: any value parses
        if i < 5 + 20:
            caught_in_header += bad
    assert caught_in_header >= 14  # version, location and identifier length: nearly always caught


def test_macaroon_problem_reasons():
    assert macaroon_problem(b"\x01abc") == "not a version-2 macaroon"
    assert "location pypi.org" in macaroon_problem(b"\x02\x01\x08test.org\x02\x01x\x00\x00\x06\x20" + bytes(32))
    assert macaroon_problem(b"\x02\x01\x08pypi.org\x02\x01x\x00\x00\x06\x10" + bytes(16)).startswith("no 32-byte")
    assert macaroon_problem(b"\x02\x01\x08pypi.org\x02\x01x\x00\x00\x06\x20" + bytes(32)) is None
    assert base62(0) == "000000"
