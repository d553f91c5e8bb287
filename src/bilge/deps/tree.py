"""Path resolution inside the root: symlinks followed component by component, confined to the root."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

from bilge.deps.view import PATH_MAX, Stat, View
from bilge.symlinks import walk


@dataclass(frozen=True)
class Resolved:
    path: str  # canonical path of what the name leads to (every component resolved)
    kind: str  # "file" | "dir" | "other" | "missing" | "loop"
    links: tuple[str, ...] = ()  # canonical locations of every symlink followed, in order


def _join(parent: str, name: str) -> str:
    return "/" + name if parent == "/" else parent + "/" + name


class Tree:
    """Symlink resolution over a view, confined to the root, with caches."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._stat: dict[str, Stat | None] = {}
        self._memo: dict[str, Resolved] = {}

    def lstat(self, path: str) -> Stat | None:
        try:
            return self._stat[path]
        except KeyError:
            st = self._stat[path] = self.view.lstat(path)
            return st

    def resolve(self, path: str, cwd: str = "/") -> Resolved:
        """Follow ``path`` like the kernel (``..`` after a symlink is taken from its target; ``..`` at the
        root stays there), with the one walker of :mod:`bilge.symlinks`."""
        if not path.startswith("/"):
            path = _join(cwd if cwd.startswith("/") else "/" + cwd, path)
        hit = self._memo.get(path)
        if hit is not None:
            return hit
        if len(path.rstrip("/")) >= PATH_MAX:  # the kernel refuses it (ENAMETOOLONG)
            return Resolved(path, "missing")
        w = walk(path, self._lookup, clamp=True)
        links = tuple("/" + p for p in w.links)
        if w.problem == "cycle":
            return Resolved(path, "loop", links)
        assert w.path is not None
        result = Resolved("/" + w.path, w.kind if w.problem is None else "missing", links)  # type: ignore[arg-type]
        self._memo[path] = result
        return result

    def _lookup(self, rel: str) -> Stat | None:
        return self.lstat("/" + rel)

    def walk_files(self, top: str) -> Iterator[str]:
        """Every regular file under the canonical directory ``top`` (symlinks not followed), sorted."""
        stack = [top]
        while stack:
            d = stack.pop()
            names = self.view.listdir(d)
            subdirs = []
            for name in names:
                p = _join(d, name)
                st = self.lstat(p)
                if st is None:
                    continue
                if st.kind == "dir":
                    subdirs.append(p)
                elif st.kind == "file":
                    yield p
            stack.extend(reversed(subdirs))

    def du(self, top: str) -> tuple[int, int]:
        """(bytes, regular files) under the canonical directory ``top``."""
        total = count = 0
        for p in self.walk_files(top):
            st = self.lstat(p)
            total += st.size if st else 0
            count += 1
        return total, count

    def glob(self, pattern: str) -> list[str]:
        """glob(3) over the view (sorted, "*" does not match a leading dot), paths as written."""
        parts = [p for p in pattern.split("/") if p]
        results = ["/"]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt: list[str] = []
            for base in results:
                if not any(ch in part for ch in "*?["):
                    cand = _join(base, part)
                    r = self.resolve(cand)
                    if r.kind == "dir" or (last and r.kind != "missing" and r.kind != "loop"):
                        nxt.append(cand)
                    continue
                r = self.resolve(base)
                if r.kind != "dir":
                    continue
                for name in self.view.listdir(r.path):
                    if name.startswith(".") and not part.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, part):
                        cand = _join(base, name)
                        rr = self.resolve(cand)
                        if rr.kind == "dir" or (last and rr.kind not in ("missing", "loop")):
                            nxt.append(cand)
            results = sorted(nxt)
        return results if parts else []
