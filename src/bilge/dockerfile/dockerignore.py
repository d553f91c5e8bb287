""".dockerignore, with Docker's semantics (moby/patternmatcher), and a walk of the build context.

* Lines starting with ``#`` are comments; blank lines are skipped; whitespace is trimmed.
* Patterns are cleaned (Go's ``filepath.Clean``) and made relative to the context root (a leading ``/``
  is dropped). They match from the root of the context, not at any depth: ``node_modules`` is only
  the top-level one, ``**/node_modules`` is every one.
* ``*`` and ``?`` never cross ``/``; ``**`` matches any number of directories; ``[...]`` classes; ``\\``
  escapes. A pattern matching a directory excludes everything below it.
* ``!pattern`` re-includes; the last pattern that matches a path decides.
* ``<Dockerfile>.dockerignore`` beside the Dockerfile takes precedence over the context's ``.dockerignore``.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    text: str  # cleaned, without the "!"
    exclusion: bool  # a "!" pattern (re-includes)
    regex: re.Pattern[str]


@dataclass(frozen=True)
class DockerIgnore:
    path: str | None  # the file it was read from
    patterns: tuple[Pattern, ...]

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def excluded(self, rel: str) -> bool:
        """Whether the context-relative path is left out of the build context."""
        rel = _clean(rel)
        if rel in ("", "."):
            return False
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        matched = False
        for pat in self.patterns:
            if any(pat.regex.match(p) for p in prefixes):
                matched = not pat.exclusion
        return matched


def _clean(p: str) -> str:
    """Go's filepath.Clean for slash paths, returning "." for empty."""
    if not p:
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    s = "/".join(out)
    return ("/" + s) if rooted else (s or ".")


def _compile(pattern: str) -> re.Pattern[str]:
    reg = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    reg.append(".*")
                else:
                    reg.append("(.*/)?")
                continue
            reg.append("[^/]*")
        elif c == "?":
            reg.append("[^/]")
        elif c == "\\":
            if i + 1 < n:
                reg.append(re.escape(pattern[i + 1]))
                i += 1
            else:
                reg.append(r"\\")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                reg.append(r"\[")
            else:
                body = pattern[i + 1:j]
                reg.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            reg.append(re.escape(c))
        i += 1
    reg.append("$")
    try:
        return re.compile("".join(reg), re.S)
    except re.error:
        return re.compile(re.escape(pattern) + "$")


def parse(text: str, path: str | None = None) -> DockerIgnore:
    pats: list[Pattern] = []
    for n, line in enumerate(text.splitlines()):
        if n == 0:
            line = line.lstrip("\ufeff")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        if not line:
            continue
        p = _clean(line)
        if len(p) > 1 and p.startswith("/"):
            p = p[1:]
        pats.append(Pattern(p, exclusion, _compile(p)))
    return DockerIgnore(path, tuple(pats))


def find(context: str | Path, dockerfile: str | Path | None = None) -> DockerIgnore | None:
    """The ignore file BuildKit would use, or None when there is none."""
    candidates = []
    if dockerfile and str(dockerfile) != "-":
        df = Path(dockerfile)
        candidates.append(df.with_name(df.name + ".dockerignore"))
    candidates.append(Path(context) / ".dockerignore")
    for c in candidates:
        if c.is_file():
            try:
                return parse(c.read_text(encoding="utf-8", errors="replace"), str(c))
            except OSError:
                continue
    return None


@dataclass(frozen=True)
class ContextEntry:
    rel: str  # path relative to the context root, "/"-separated
    is_dir: bool
    size: int  # bytes of a file; for a directory the bytes of the files under it that are sent


def walk_context(context: str | Path, ignore: DockerIgnore | None, root: str = ".",
                 skip_dirs: frozenset[str] = frozenset(), limit: int = 200_000) -> Iterator[ContextEntry]:
    """Every file the build context sends under ``root`` (context-relative), after .dockerignore.

    Directories named in ``skip_dirs`` are yielded (with their size) but not descended into for the
    caller; their sizes are still measured. Symlinks are not followed. Stops after ``limit`` entries.
    """
    base = Path(context)
    start = base / root if root not in (".", "") else base
    if start.is_file():
        rel = _clean(root)
        if not (ignore and ignore.excluded(rel)):
            yield ContextEntry(rel, False, start.stat().st_size)
        return
    count = 0
    for dirpath, dirnames, filenames in os.walk(start):
        reldir = _clean(os.path.relpath(dirpath, base).replace(os.sep, "/"))
        keep = []
        for d in sorted(dirnames):
            rel = d if reldir == "." else f"{reldir}/{d}"
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                continue
            if ignore and ignore.excluded(rel) and not ignore.has_exceptions:
                continue
            if d in skip_dirs:
                yield ContextEntry(rel, True, dir_size(full, base, ignore))
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = name if reldir == "." else f"{reldir}/{name}"
            if ignore and ignore.excluded(rel):
                continue
            try:
                size = os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            yield ContextEntry(rel, False, size)
            count += 1
            if count >= limit:
                return


def dir_size(path: str | Path, context: str | Path, ignore: DockerIgnore | None) -> int:
    total = 0
    base = Path(context)
    for dirpath, _dirnames, filenames in os.walk(path):
        reldir = os.path.relpath(dirpath, base).replace(os.sep, "/")
        for name in filenames:
            rel = posixpath.join(reldir, name) if reldir != "." else name
            if ignore and ignore.excluded(rel):
                continue
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total
