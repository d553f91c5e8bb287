"""A list of path regexes searched as one, fast.

Joined into one alternation, patterns such as ``(?:^|/)node_modules/`` make Python's ``re`` try every
branch at every position of the path (15 µs a path, paid for every text file of an image). The same
test is split by shape, each part keeping its exact meaning:

- ``^R`` (R without a top-level ``|``): ``R`` matched at position 0;
- ``(?:^|/)R``: ``R`` matched at position 0, or ``/R`` searched (a literal first character: ``re``
  looks only at the slashes);
- anything else: searched as written.

``search(path)`` is true exactly when ``re.search`` of any pattern is.
"""

from __future__ import annotations

import re

_SLASH = "(?:^|/)"


def has_top_level_alternation(pattern: str) -> bool:
    """Whether ``pattern`` has a ``|`` outside every group and character class."""
    depth, i, n = 0, 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":  # a class: skip to its end ("]" first, or after "^", is a literal)
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return True
        i += 1
    return False


def alternation(patterns: list[str]) -> str:
    """The patterns as one alternation, each in its own group."""
    return "|".join(f"(?:{p})" for p in patterns)


class PathSet:
    """Patterns (already checked to compile) searched as one; ``search`` returns a match or None."""

    __slots__ = ("patterns", "_at_start", "_after_slash", "_general")

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = tuple(patterns)
        at_start: list[str] = []  # matched at position 0
        after_slash: list[str] = []  # matched at 0 or right after any "/"
        general: list[str] = []
        for p in patterns:
            if p.startswith(_SLASH) and not has_top_level_alternation(p[len(_SLASH):]):
                after_slash.append(p[len(_SLASH):])
            elif p.startswith("^") and not has_top_level_alternation(p[1:]):
                at_start.append(p[1:])
            else:
                general.append(p)
        starts = at_start + after_slash
        self._at_start = re.compile(alternation(starts)).match if starts else None
        self._after_slash = re.compile(f"/(?:{alternation(after_slash)})").search if after_slash else None
        self._general = re.compile(alternation(general)).search if general else None

    def search(self, path: str) -> re.Match[str] | None:
        for find in (self._at_start, self._after_slash, self._general):
            if find is not None and (m := find(path)) is not None:
                return m
        return None

    def __repr__(self) -> str:
        return f"PathSet({list(self.patterns)!r})"
