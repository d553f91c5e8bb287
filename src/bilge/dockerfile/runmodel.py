"""The facts a RUN yields (:class:`RunFacts` and its parts), the path helpers the rules share, and the
context a RUN is read in (working directory, home, variables)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bilge.dockerfile.parse import Instruction, Mount, join_path
from bilge.dockerfile.shell import Command


@dataclass(frozen=True)
class PkgOp:
    manager: str  # apt | apk | yum | zypper
    action: str  # install | remove
    names: tuple[str, ...]
    text: str
    virtual: str | None = None  # apk --virtual NAME
    options: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CacheUse:
    kind: str  # apt-lists | apk-cache | yum-cache | pip-cache | npm-cache | yarn-cache | gem-cache ...
    paths: tuple[str, ...]
    text: str  # the command that fills it
    cleaned: str | None  # why it does not stay in the layer (None: it stays)


@dataclass(frozen=True)
class PathOp:
    path: str  # absolute when it could be resolved; may keep globs and unknown $VARs
    text: str
    partial: bool = False  # removes or changes only part of what is under path (find -delete, prune ...)
    what: str = ""  # short description ("node_modules", "download", "gem cache" ...)


@dataclass(frozen=True)
class Write:
    path: str
    text: str
    names: frozenset[str]  # variables whose value lands in the file
    reads_secret: bool  # content comes from /run/secrets/...
    via: str


@dataclass(frozen=True)
class RunFacts:
    instruction: Instruction
    commands: tuple[Command, ...]
    shell: bool  # the commands were read from a shell script (not exec form, not another interpreter)
    mounts: tuple[Mount, ...]
    vars_named: frozenset[str]
    packages: tuple[PkgOp, ...] = ()
    caches: tuple[CacheUse, ...] = ()
    creates: tuple[PathOp, ...] = ()
    removes: tuple[PathOp, ...] = ()
    cache_cleans: tuple[tuple[str, str], ...] = ()  # (cache kind, command text)
    writes: tuple[Write, ...] = ()
    chowns: tuple[PathOp, ...] = ()
    secret_reads: tuple[str, ...] = ()
    script: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def installs(self) -> list[PkgOp]:
        return [p for p in self.packages if p.action == "install"]

    @property
    def removals(self) -> list[PkgOp]:
        return [p for p in self.packages if p.action == "remove"]


# --- helpers ----------------------------------------------------------------------------------------------

_GLOB = re.compile(r"[*?\[]")
_VAR_RE = re.compile(r"\$\{(?P<bn>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+=?])(?P<alt>[^}]*))?\}"
                     r"|\$(?P<n>[A-Za-z_][A-Za-z0-9_]*)")


def under(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it (lexically)."""
    root = root.rstrip("/") or "/"
    return path == root or root == "/" or path.startswith(root + "/")


def strip_glob_tail(path: str) -> str:
    """``/var/lib/apt/lists/*`` -> ``/var/lib/apt/lists``; the directory a glob removes from."""
    while path.endswith(("/*", "/**", "/.*", "/*.*")):
        path = path.rsplit("/", 1)[0] or "/"
    return path


def glob_prefix(path: str) -> str:
    """The longest directory prefix without glob characters or unknown variables."""
    parts = path.split("/")
    out = []
    for p in parts:
        if _GLOB.search(p) or "$" in p or "`" in p:
            break
        out.append(p)
    return "/".join(out) or "/"


def _home(user: str, scope: Mapping[str, str]) -> str:
    if scope.get("HOME"):
        return scope["HOME"]
    return "/root" if user in ("root", "0", "") else f"/home/{user}"


class _Ctx:
    """Shell state while walking the commands of one RUN: cwd, variables."""

    def __init__(self, ins: Instruction) -> None:
        self.ins = ins
        self.vars: dict[str, str] = {k: v.value for k, v in ins.scope.items() if v.value is not None}
        self.cwd = ins.workdir
        self.home = _home(ins.user, self.vars)
        self.vars.setdefault("HOME", self.home)

    def expand(self, text: str, local: Mapping[str, str] | None = None) -> str:
        env = dict(self.vars)
        if local:
            env.update(local)

        def sub(m: re.Match) -> str:
            name = m.group("bn") or m.group("n")
            op, alt = m.group("op"), m.group("alt")
            val = env.get(name)
            if op and op.endswith("+"):
                return alt if val else ("" if name in env else m.group(0))
            if val:
                return val
            if op and op.endswith(("-", "=")):
                return alt or ""
            return m.group(0)

        out = _VAR_RE.sub(sub, text)
        if out.startswith("~/") or out == "~":
            out = self.home + out[1:]
        return out

    def path(self, text: str, local: Mapping[str, str] | None = None) -> str:
        p = self.expand(text, local)
        if p.startswith("/"):
            return join_path("/", p) if not _GLOB.search(p) and "$" not in p else _norm_keep(p)
        if p.startswith("$") or p.startswith("`"):
            return p
        return join_path(self.cwd, p) if not _GLOB.search(p) and "$" not in p else _norm_keep(
            self.cwd.rstrip("/") + "/" + p)


def _norm_keep(p: str) -> str:
    parts: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts:
            parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def _split_opts(args: list[str], with_value: frozenset[str] = frozenset()) -> tuple[list[str], set[str]]:
    """Positional arguments and the set of option names (``-y``, ``--no-cache`` ...)."""
    pos: list[str] = []
    opts: set[str] = set()
    it = iter(range(len(args)))
    skip = False
    for i in it:
        a = args[i]
        if skip:
            skip = False
            continue
        if a == "--":
            pos += args[i + 1:]
            break
        if a.startswith("-") and len(a) > 1:
            key = a.split("=", 1)[0]
            opts.add(key)
            if key in with_value and "=" not in a:
                skip = True
                if i + 1 < len(args):
                    opts.add(f"{key}={args[i + 1]}")
            continue
        pos.append(a)
    return pos, opts


def _pkg_names(words: list[str], ctx: _Ctx, local: Mapping[str, str]) -> list[str]:
    out = []
    for w in words:
        for part in ctx.expand(w, local).split():
            if part.startswith("-") or "$" in part:
                continue
            name = re.split(r"[=<>~/]", part, maxsplit=1)[0]  # pkg=1.2, pkg>=1, pkg/bookworm
            if name:
                out.append(name)
    return out


class _Facts:
    def __init__(self) -> None:
        self.packages: list[PkgOp] = []
        self.caches: dict[str, tuple[tuple[str, ...], str]] = {}
        self.creates: list[PathOp] = []
        self.removes: list[PathOp] = []
        self.cache_cleans: list[tuple[str, str]] = []
        self.writes: list[Write] = []
        self.chowns: list[PathOp] = []
        self.secret_reads: list[str] = []
        self.no_cache: set[str] = set()  # cache kinds a command was told not to keep

    def cache(self, kind: str, paths: list[str], text: str) -> None:
        if kind not in self.caches:
            self.caches[kind] = (tuple(paths), text)

