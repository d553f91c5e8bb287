"""Roots: the programs a closure starts from (binaries, directories, the entrypoint; scripts' interpreters)."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping

from bilge.deps.model import Root
from bilge.deps.resolver import Resolver
from bilge.deps.tree import Resolved, _join
from bilge.deps.view import DEFAULT_PATH, SHELLS
from bilge.errors import BilgeError


def _shebang(data: bytes | None) -> tuple[str, str | None] | None:
    if not data or not data.startswith(b"#!"):
        return None
    line = data[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").strip()
    if not line:
        return None
    interp, _, arg = line.replace("\t", " ").partition(" ")
    arg = arg.strip()
    return interp, arg or None


class _Roots:
    def __init__(self, resolver: Resolver, env: Mapping[str, str]) -> None:
        self.r = resolver
        self.env = env
        self.roots: list[Root] = []
        self.seen: set[str] = set()
        self.links: dict[str, set[str]] = {}
        self.missing: list[tuple[str, str, str]] = []  # (name, needed by, reason): the image cannot run it

    def which(self, cmd: str) -> str | None:
        for d in (self.env.get("PATH") or DEFAULT_PATH).split(":"):
            if not d:
                d = self.r.cwd
            cand = _join(d, cmd)
            res = self.r.tree.resolve(cand)
            if res.kind == "file":
                st = self.r.tree.lstat(res.path)
                if st is None or st.mode & 0o111:
                    return cand
        return None

    def add(self, path: str, origin: str, depth: int = 0) -> None:
        res = self.r.tree.resolve(path, self.r.cwd)
        if res.kind == "missing" or res.kind == "loop":
            raise BilgeError(f"{path}: not found in the image" + (" (symlink loop)" if res.kind == "loop" else ""))
        if res.kind != "file":
            raise BilgeError(f"{path}: not a regular file in the image ({res.kind})")
        if res.path in self.seen and not res.links:
            return
        info = self.r.elf_at(res.path)
        if info is not None:
            kind = "elf" if (info.needed or info.interp) else "static"
            if info.error:  # not a static binary: what it needs cannot be read
                raise BilgeError(f"{path}: {info.error}; the libraries it needs cannot be resolved")
            self._push(Root(path, res.path, kind, origin, info.interp), res)
            return
        head = self.r.view.read_small(res.path, 512)
        sb = _shebang(head)
        if sb is None:
            raise BilgeError(f"{path}: neither an ELF file nor a #! script")
        interp, arg = sb
        self._push(Root(path, res.path, "script", origin, interp + (f" {arg}" if arg else "")), res)
        if depth >= 4:
            raise BilgeError(f"{path}: #! interpreters nested too deeply")
        if posixpath.basename(interp) == "env" and arg:
            words = arg.split()
            while words and (words[0].startswith("-") or "=" in words[0]):
                words.pop(0)
            self._interpreter(interp, res.path, depth)
            if words:
                found = words[0] if "/" in words[0] else self.which(words[0])
                if found is None:
                    self.missing.append((words[0], res.path, f"#! program {words[0]!r} is not in the image's PATH"))
                else:
                    self._interpreter(found, res.path, depth)
        else:
            self._interpreter(interp, res.path, depth)

    def _interpreter(self, path: str, script: str, depth: int) -> None:
        r = self.r.tree.resolve(path, self.r.cwd)
        if r.kind != "file":
            self.missing.append((path, script, "#! interpreter not in the image"))
            return
        self.add(path, "interpreter", depth + 1)

    def _push(self, root: Root, res: Resolved) -> None:
        if res.path not in self.seen:
            self.seen.add(res.path)
            self.roots.append(root)
        self.links.setdefault(res.path, set()).update(res.links)

    def add_dir(self, path: str) -> None:
        res = self.r.tree.resolve(path, self.r.cwd)
        if res.kind != "dir":
            raise BilgeError(f"{path}: not a directory in the image")
        for p in self.r.tree.walk_files(res.path):
            info = self.r.elf_at(p)
            if info is None or p in self.seen:
                continue
            if info.elf_class == 0:
                self.r.note(f"{p}: {info.error}; skipped")
                continue
            if info.error:  # the header reads but the dynamic section does not: unresolvable, not static
                self.missing.append((p, p, f"{info.error}; the libraries it needs cannot be resolved"))
                continue
            self.seen.add(p)
            kind = "elf" if (info.needed or info.interp) else "static"
            self.roots.append(Root(p, p, kind, "path", info.interp))
            self.links.setdefault(p, set()).update(res.links)

    def add_entrypoint(self, config: Mapping[str, object]) -> None:
        entry = list(config.get("Entrypoint") or [])  # type: ignore[call-overload]
        cmd = list(config.get("Cmd") or [])  # type: ignore[call-overload]
        argv = [str(a) for a in (entry + cmd if entry else cmd)]
        if not argv:
            raise BilgeError("the image has no Entrypoint or Cmd")
        programs = [argv[0]]
        if posixpath.basename(argv[0]) in SHELLS and len(argv) >= 3 and argv[1] == "-c":
            try:
                words = shlex.split(argv[2])
            except ValueError:
                words = argv[2].split()
            while words and ("=" in words[0] and not words[0].startswith("=") or words[0] in ("exec", "env")):
                words.pop(0)
            if words and not re.match(r"^[\[\(\{!]|^(if|for|while|case|then)$", words[0]):
                programs.append(words[0])
        for prog in programs:
            found = prog if "/" in prog else self.which(prog)
            if found is None or self.r.tree.resolve(found, self.r.cwd).kind != "file":
                self.missing.append((prog, "Entrypoint/Cmd", "not in the image" + ("" if "/" in prog else
                                                                                  " (looked up in PATH)")))
                continue
            self.add(found, "entrypoint")
