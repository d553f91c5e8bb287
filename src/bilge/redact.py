"""Mask secrets in text that bilge prints for other reasons (history lines in `analyze`, `lint`, `diff`).

The always-on safety net: every command that prints a history line or a Dockerfile value passes it
through :func:`redact`, which finds secrets with the same rules as `bilge secrets` (format rules and
secret-looking assignments in shell context) and masks each as ``ghp_…(40 chars)``: a few leading
characters and the length, never more than a quarter of the value.
"""

from __future__ import annotations

from functools import lru_cache

from bilge.secrets.mask import mask
from bilge.secrets.mask import redact as _replace

__all__ = ["mask", "redact"]


@lru_cache(maxsize=1)
def _scanner():
    from bilge.secrets.rules import load_ruleset
    from bilge.secrets.textscan import Scanner

    return Scanner(load_ruleset())


def redact(text: str) -> str:
    """``text`` with every secret the built-in rules find replaced by its mask."""
    if not text:
        return text
    from bilge.secrets.textscan import SHELL

    data = text.encode("utf-8", "surrogateescape")
    hits = [h for h in _scanner().scan(data, SHELL) if h.secret]
    if not hits:
        return text
    # each value masked where it was found (by offset: whatever characters surround it), then its
    # other occurrences in the same text (as whole words only)
    out = bytearray()
    pos = 0
    for h in sorted(hits, key=lambda h: h.start):
        if h.start < pos:
            continue
        out += data[pos:h.start] + mask(h.secret, h.reveal).encode("utf-8")
        pos = h.end
    out += data[pos:]
    return _replace(bytes(out).decode("utf-8", "surrogateescape"), [(h.secret, mask(h.secret, h.reveal)) for h in hits])
