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

    ``values`` holds (secret, masked) pairs; where secrets overlap the longest one is masked whole.
    A secret is never masked inside a longer word: the value ``insta`` leaves ``install`` alone.
    """
    return Redactor(values)(text)


def _standalone(text: str, start: int, end: int, secret: str) -> bool:
    """The match is not part of a longer word (only checked on the sides where the secret is alnum)."""
    if secret[0].isalnum() and start > 0 and text[start - 1].isalnum() and text[start - 1].isascii():
        return False
    return not (secret[-1].isalnum() and end < len(text) and text[end].isalnum() and text[end].isascii())


def _replace_standalone(text: str, secret: str, masked: str) -> str:
    """``text`` with every occurrence of ``secret`` that is not part of a longer word masked."""
    out, pos, i = [], 0, text.find(secret)
    while i != -1:
        end = i + len(secret)
        if _standalone(text, i, end, secret):
            out += (text[pos:i], masked)
            pos = end
            i = text.find(secret, end)
        else:
            i = text.find(secret, i + 1)
    return "".join(out) + text[pos:] if out else text


class Redactor:
    """:func:`redact` for many texts and many secrets: one Aho-Corasick automaton (leftmost-longest)
    built once, one pass over each text, so masking n findings costs n passes, not n x n replaces."""

    def __init__(self, values: list[tuple[str, str]]) -> None:
        pairs = dict(sorted(((s, m) for s, m in values if s), key=lambda p: -len(p[0])))
        self._secrets = list(pairs)
        self._masked = [pairs[s] for s in self._secrets]
        self._ac = None
        if len(self._secrets) > 8:
            import ahocorasick_rs

            self._ac = ahocorasick_rs.AhoCorasick(self._secrets, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)

    def __call__(self, text: str) -> str:
        if not text or not self._secrets:
            return text
        if self._ac is None:
            for secret, masked in zip(self._secrets, self._masked, strict=True):
                if secret in text:
                    text = _replace_standalone(text, secret, masked)
            return text
        out, pos = [], 0
        for k, start, end in self._ac.find_matches_as_indexes(text):
            if not _standalone(text, start, end, self._secrets[k]):
                continue
            out.append(text[pos:start])
            out.append(self._masked[k])
            pos = end
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)
