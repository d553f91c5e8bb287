"""The one symlink walker: a path followed component by component, as the kernel does inside a chroot.

A leaf module over any ``lookup(root-relative path) -> node | None`` whose nodes have ``kind``
("dir", "symlink", ...) and ``linkname``: :class:`bilge.fs.MergedFS` (analyze, secrets, slim) and
:class:`bilge.deps.tree.Tree` (the loader's view) both walk with it, under the same limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS: links followed in one lookup


@dataclass(frozen=True)
class Walk:
    """Where a path leads.

    ``path`` is root-relative ("" is the root): the real path when ``problem`` is None; with ``missing`` or
    ``notdir``, the resolved prefix and the rest of the name as written (where it would be); None with
    ``escape`` (".." above the root) or ``cycle`` (more than MAX_SYMLINKS links).
    """

    path: str | None
    problem: str | None  # None | "missing" | "notdir" | "escape" | "cycle"
    kind: str | None = None  # the kind of what ``path`` names, when found ("dir" for the root)
    links: tuple[str, ...] = ()  # root-relative locations of every symlink followed, in order


def _parts(text: str) -> list[str]:
    """The components of ``text``, last first (a stack: the next component is popped from the end)."""
    return [p for p in reversed(text.split("/")) if p and p != "."]


def walk(path: str, lookup: Callable[[str], Any], *, follow_last: bool = True, clamp: bool = False) -> Walk:
    """Follow ``path`` inside the root. ``clamp``: ".." at the root stays there (the kernel in a chroot)
    rather than being reported as an escape."""
    parts = _parts(path)
    cur: list[str] = []
    links: list[str] = []
    kind = "dir"
    while parts:
        comp = parts.pop()
        if comp == "..":
            if not cur:
                if clamp:
                    continue
                return Walk(None, "escape", None, tuple(links))
            cur.pop()
            kind = "dir"
            continue
        candidate = "/".join(cur + [comp])
        node = lookup(candidate)
        if node is None:
            return Walk("/".join([candidate, *reversed(parts)]), "missing", None, tuple(links))
        if node.kind == "symlink" and (parts or follow_last):
            if len(links) >= MAX_SYMLINKS:
                return Walk(None, "cycle", None, tuple(links))
            links.append(candidate)
            target = node.linkname or ""
            if not target:  # an empty link names nothing (ENOENT)
                return Walk("/".join([candidate, *reversed(parts)]), "missing", None, tuple(links))
            if target.startswith("/"):
                cur = []
            parts += _parts(target)
            kind = "dir"
            continue
        if parts and node.kind != "dir":
            return Walk("/".join([candidate, *reversed(parts)]), "notdir", None, tuple(links))
        cur.append(comp)
        kind = node.kind
    return Walk("/".join(cur), None, kind, tuple(links))
