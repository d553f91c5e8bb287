"""Rules whose every match starts at one of their keywords: run only where the keyword is.

The keyword pre-filter already knows where each keyword occurs in a buffer (the Aho-Corasick pass
reports every occurrence). For a rule whose regex begins with literal text that starts with one of
the rule's keywords (``ghp_``, ``(?i:authorization)``, ``(?:(?i:heroku)…|HRKU-…)``), every match
starts at a keyword occurrence, so trying ``regex.match`` at those offsets finds exactly what
``regex.finditer`` over the whole buffer finds, without the regex engine walking every byte
(Python's ``re`` has no fast literal search for a case-insensitive or branched prefix: those rules
ran at 15-20 MB/s on large text files). Lookbehinds still see the bytes before the offset.

Whether a rule is anchored is read from the compiled pattern's parse tree, conservatively: any
construct other than literals, groups and lookbehinds before the keyword makes it "not anchored",
and it is searched in full as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

try:  # CPython 3.11+
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other Pythons: nothing is anchored, all rules searched in full
    _p = _c = None

_MAX_PREFIX = 32


def _prefixes(items: list, limit: int = _MAX_PREFIX) -> list[bytes] | None:
    """The literal prefixes (lower-cased) every match of the sequence ``items`` starts with.

    One prefix per top-level alternative; None when the start is not plain literal text."""
    out = b""
    for op, av in items:
        if len(out) >= limit:
            break
        if op is _c.LITERAL:
            out += bytes([av]).lower() if av < 256 else b"\xff"
        elif op is _c.ASSERT_NOT or op is _c.ASSERT:
            if av[0] != -1:  # a lookahead before the keyword: not analysed
                return [out] if out else None
        elif op is _c.SUBPATTERN:
            sub = _prefixes(list(av[-1]), limit - len(out))
            if sub is None:
                return [out] if out else None
            if len(sub) > 1:  # alternatives inside the group: the prefixes end there
                return [out + s for s in sub]
            out += sub[0]
            if not _consumes_only_literals(av[-1]):
                return [out]
        elif op is _c.BRANCH:
            alts = []
            for alt in av[1]:
                sub = _prefixes(list(alt), limit - len(out))
                if not sub:
                    return [out] if out else None
                alts.extend(out + s for s in sub)
            return alts
        else:
            break
    return [out] if out else None


def _consumes_only_literals(items: Iterable) -> bool:
    for op, av in items:
        if op is _c.LITERAL or ((op is _c.ASSERT_NOT or op is _c.ASSERT) and av[0] == -1):
            continue
        if op is _c.SUBPATTERN and _consumes_only_literals(av[-1]):
            continue
        return False
    return True


def anchored(regex: re.Pattern[bytes], keywords: Iterable[bytes]) -> bool:
    """Whether every match of ``regex`` starts at an occurrence of one of ``keywords`` (lower-case)."""
    if _p is None:
        return False
    try:
        tree = _p.parse(regex.pattern, regex.flags)
    except Exception:  # noqa: BLE001 - a pattern the private parser cannot read: search in full
        return False
    prefixes = _prefixes(list(tree))
    kws = [k for k in keywords if k]
    if not prefixes or not kws:
        return False
    return all(any(p.startswith(k) for k in kws) for p in prefixes)


def finditer_at(regex: re.Pattern[bytes], buf: bytes, starts: list[int]) -> Iterator[re.Match[bytes]]:
    """``regex.finditer(buf)`` for an anchored regex, trying only the sorted offsets ``starts``."""
    end = 0
    for pos in starts:
        if pos < end:
            continue  # inside the previous match: finditer does not overlap matches
        m = regex.match(buf, pos)
        if m is not None:
            end = m.end()
            yield m
