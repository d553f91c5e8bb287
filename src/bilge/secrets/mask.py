"""Masking and fingerprints: a secret value never leaves bilge whole unless the user asks.

``mask("ghp_abcdef...", reveal=6)`` -> ``"ghp_ab…(40 chars)"``. At most a quarter of a value is
ever revealed, so short passwords show one or two characters at most.

A fingerprint identifies one secret at one place across rebuilds (it does not depend on layer
digests, history positions or line numbers): ``sha256("bilge-secrets/1", rule, where, value)``,
first 20 hex digits. It is a one-way hash; for a weak password it is as guessable as the
password itself, which is one more reason to rotate what bilge finds.
"""

from __future__ import annotations

import hashlib
import re

ELLIPSIS = "…"


def revealed_prefix(value: str, reveal: int) -> str:
    n = len(value)
    keep = min(max(0, reveal), n // 4)
    return value[:keep]


def mask(value: str, reveal: int = 4) -> str:
    """A few leading characters and the length; never more than a quarter of the value."""
    return f"{revealed_prefix(value, reveal)}{ELLIPSIS}({len(value)} chars)"


def fingerprint(rule_id: str, where: str, value: str) -> str:
    h = hashlib.sha256()
    for part in ("bilge-secrets/1", rule_id, where, value):
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()[:20]


def redact(text: str, values: list[tuple[str, str]]) -> str:
    """Replace every occurrence of each secret in ``text`` by its masked form.

    ``values`` holds (secret, masked) pairs; longer secrets are replaced first so that a secret
    containing another is masked whole. A secret is never masked inside a longer word: the
    value ``insta`` leaves ``install`` alone.
    """
    for secret, masked in sorted(values, key=lambda p: -len(p[0])):
        if secret and secret in text:
            text = _bounded(secret).sub(lambda _m, m=masked: m, text)
    return text


def _bounded(secret: str) -> re.Pattern[str]:
    left = r"(?<![A-Za-z0-9])" if secret[0].isalnum() else ""
    right = r"(?![A-Za-z0-9])" if secret[-1].isalnum() else ""
    return re.compile(left + re.escape(secret) + right)
