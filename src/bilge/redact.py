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

    hits = _scanner().scan(text.encode("utf-8", "surrogateescape"), SHELL)
    return _replace(text, [(h.secret, mask(h.secret, h.reveal)) for h in hits if h.secret])
