"""Helpers more than one rule uses: what a COPY takes from the context, where files flow, which
instruction created a path."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bilge.dockerfile.parse import Instruction, Stage, join_path
from bilge.dockerfile.rules.base import Analysis, Finding, measured, norm
from bilge.dockerfile.runmodel import PathOp, PkgOp, glob_prefix, strip_glob_tail, under
from bilge.units import human_bytes

if TYPE_CHECKING:
    from bilge.dockerfile.cost import Measure

WHOLE_CONTEXT = frozenset({".", "./", "/", "*", "./*"})


def context_sources(ins: Instruction) -> list[str]:
    if ins.keyword not in ("COPY", "ADD") or ins.flag("from") is not None:
        return []
    srcs = [ins.expand(a) for a in ins.args[:-1]]
    return [s for s in srcs if not s.startswith("<<") and not re.match(r"^[a-z][a-z0-9+.\-]*://", s, re.I)
            and not s.startswith("git@")]


def dest_of(ins: Instruction) -> str:
    dest = ins.expand(ins.args[-1])
    return join_path(ins.workdir, dest)


def has_glob(p: str) -> bool:
    return bool(re.search(r"[*?\[]", p))


def flows_to_shipped(an: Analysis, stage: Stage, path: str) -> Instruction | None:
    """The COPY --from in a shipped stage that carries ``path`` of ``stage`` into the image, if any."""
    for si in an.content:
        st = an.df.stages[si]
        for ins, src, _ref in an.df.copy_sources(st):
            if src is None or src.index != stage.index or ins.keyword not in ("COPY", "ADD"):
                continue
            for s in ins.args[:-1]:
                s = norm(ins.expand(s))
                if s.startswith("/") and under(path, s):
                    return ins
    return None


# --- size rules -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Creator:
    ins: Instruction
    path: str
    what: str
    partial: bool = False


def _creators(an: Analysis, ins: Instruction) -> list[Creator]:
    out = []
    if ins.keyword == "RUN":
        for c in an.facts(ins).creates:
            out.append(Creator(ins, c.path, c.what or "files", c.partial))
    elif ins.keyword in ("COPY", "ADD"):
        dest = dest_of(ins)
        srcs = [ins.expand(a) for a in ins.args[:-1] if not a.startswith("<<")]
        into_dir = len(srcs) > 1 or ins.args[-1].endswith("/") or ins.args[-1] in (".", "./")
        ctx = Path(an.opts.context) if an.opts.context and not ins.flag("from") else None
        for src in srcs:
            n = norm(src)
            if n in (".", "/") or has_glob(n):
                out.append(Creator(ins, dest, "copied files", True))
                continue
            is_dir = (ctx / n.lstrip("/")).is_dir() if ctx is not None and (ctx / n.lstrip("/")).exists() else (
                ins.flag("from") is not None and n.startswith("/") and "." not in posixpath.basename(n))
            target = dest if (is_dir or not into_dir) else join_path(dest, posixpath.basename(n))
            out.append(Creator(ins, target, "copied files" if is_dir else "copied file", is_dir))
    return out


def _path_match(removed: PathOp, c: Creator) -> bool:
    r = removed.path
    if "$" in r or "`" in r:
        return False
    rbase = strip_glob_tail(r)
    cp = c.path
    if cp == "/":
        return False
    if has_glob(cp):
        cp = glob_prefix(cp)
    if under(cp, rbase) and (not has_glob(r) or fnmatch.fnmatch(cp, r) or rbase != r):
        return True  # the removal covers what the creator wrote
    if under(rbase, cp) and not has_glob(rbase):
        return c.partial or c.what in ("copied files", "node_modules", "gems", "extracted files", "git clone") or \
            rbase == cp
    if has_glob(r) and fnmatch.fnmatch(cp, r):
        return True
    return False


_PKG_FAMILY = {"apt": "apt", "apk": "apk", "yum": "yum", "zypper": "zypper"}


def _slash_prefixes(path: str) -> list[str]:
    """``/a/b/c`` -> ``/a``, ``/a/b``, ``/a/b/c``: every R with ``under(path, R)`` true, except ``/``."""
    return [path[:i] for i in range(1, len(path)) if path[i] == "/"] + [path]


class _CreatorIndex:
    """Earlier creators, indexed so a removal looks only at those ``_path_match`` could accept:
    creators under the removed path, creators that are its ancestors, and the few it cannot place."""

    def __init__(self) -> None:
        self.creators: list[Creator] = []
        self.under: dict[str, list[int]] = {}  # R -> creators whose path is R or under it
        self.exact: dict[str, list[int]] = {}  # path (no trailing slash) -> creators
        self.wild: list[int] = []  # relative paths: always looked at

    def add(self, c: Creator) -> None:
        k = len(self.creators)
        self.creators.append(c)
        cp = glob_prefix(c.path) if has_glob(c.path) else c.path
        if not cp.startswith("/") or not cp.strip("/"):
            self.wild.append(k)
            return
        for prefix in _slash_prefixes(cp):
            self.under.setdefault(prefix, []).append(k)
        self.exact.setdefault(cp.rstrip("/"), []).append(k)

    def candidates(self, r: str) -> list[Creator]:
        rbase = (strip_glob_tail(r).rstrip("/")) or "/"
        if not r.startswith("/") or rbase == "/":
            return self.creators
        ks = set(self.under.get(rbase, ())) | set(self.wild)
        if has_glob(r):
            literal = re.split(r"[*?\[]", r, maxsplit=1)[0]
            directory = literal.rsplit("/", 1)[0]
            if not directory:
                return self.creators
            ks |= set(self.under.get(directory, ()))
        if not has_glob(rbase):
            for prefix in _slash_prefixes(rbase):
                ks |= set(self.exact.get(prefix, ()))
        return [self.creators[k] for k in sorted(ks)]


def cleanup_matches(an: Analysis) -> list[tuple[Instruction, list[tuple[str, Instruction, str]]]]:
    """For each RUN in the shipped chain: (what it removes, the earlier instruction that created it, how).

    One pass in build order with indexes of what earlier instructions created, installed and cached
    (creators by first path component, packages by name, caches by kind), so the cost grows with the
    matches, not with the square of the instruction count. Computed once per analysis."""
    cached = an.memo.get("cleanup_matches")
    if cached is not None:
        return cached
    seq = an.shipped_instructions()
    result = []
    index = _CreatorIndex()
    installed: dict[tuple[str | None, str], list[tuple[int, int]]] = {}  # (family, name) -> [(pos, k)]
    install_ops: dict[tuple[int, int], tuple[Instruction, PkgOp]] = {}
    caches: dict[str, list[Instruction]] = {}
    for pos, ins in enumerate(seq):
        if ins.keyword == "RUN":
            facts = an.facts(ins)
            matches: list[tuple[str, Instruction, str]] = []
            # paths
            for rm in facts.removes:
                r = rm.path
                if "$" in r or "`" in r:
                    continue
                hit = [c for c in index.candidates(r) if _path_match(rm, c)]
                if not hit:
                    continue
                # prefer the most specific creators: exact paths over whole-directory copies
                exact = [c for c in hit if not c.partial or c.path == strip_glob_tail(rm.path)]
                what = _rel(rm.path, ins.workdir)
                if rm.partial:
                    what = f"{rm.what or 'files'} under {what}"
                for c in exact or hit:
                    matches.append((what, c.ins, c.what))
            # packages
            for rem in facts.removals:
                fam = _PKG_FAMILY.get(rem.manager)
                keys = sorted({key for n in rem.names for key in installed.get((fam, n), ())})
                for key in keys:
                    e, inst = install_ops[key]
                    names = set(inst.names) | ({inst.virtual} if inst.virtual else set())
                    common = [n for n in rem.names if n in names]
                    if common:
                        matches.append((" ".join(common), e, f"{inst.manager} packages"))
            # cache cleaning commands
            for kind, _text in facts.cache_cleans:
                for e in caches.get(kind, ()):
                    matches.append((CACHE_NAMES.get(kind, kind), e, kind))
            if matches:
                result.append((ins, matches))
            for k, inst in enumerate(facts.installs):
                install_ops[(pos, k)] = (ins, inst)
                fam = _PKG_FAMILY.get(inst.manager)
                for n in {*inst.names, *([inst.virtual] if inst.virtual else [])}:
                    installed.setdefault((fam, n), []).append((pos, k))
            for c in facts.caches:
                if c.cleaned is None:
                    caches.setdefault(c.kind, []).append(ins)
        for c in _creators(an, ins):
            index.add(c)
    an.memo["cleanup_matches"] = result
    return result


def _rel(path: str, workdir: str) -> str:
    if workdir != "/" and path.startswith(workdir.rstrip("/") + "/"):
        return path[len(workdir.rstrip("/")) + 1:]
    return path


_TOOLCHAIN = frozenset({
    "build-essential", "build-base", "alpine-sdk", "gcc", "g++", "cpp", "c++", "clang", "llvm", "make", "cmake",
    "autoconf", "automake", "libtool", "pkg-config", "pkgconf", "pkgconfig", "git", "bison", "flex", "nasm", "yasm",
    "ninja-build", "meson", "gfortran", "golang", "golang-go", "go", "rustc", "cargo", "rust", "maven", "gradle",
    "default-jdk", "default-jdk-headless", "linux-headers", "development tools", "gcc-c++", "kernel-headers",
    "kernel-devel", "ccache", "scons",
})
_TOOLCHAIN_RX = re.compile(r"^(gcc|g\+\+|clang|llvm|cpp)-\d+(\.\d+)?$|^openjdk-?\d+-jdk(-headless)?$|^openjdk\d+(-jdk)?$"
                           r"|^java-[\d.]+-openjdk-devel$|.+-dev$|.+-devel$")


def toolchain_packages(names: Iterable[str]) -> list[str]:
    return [n for n in names if n.lower() in _TOOLCHAIN or _TOOLCHAIN_RX.match(n.lower())]


_TOOLCHAIN_DEPS = re.compile(r"^(binutils|libbinutils|libctf|libgprofng|git-man|libc-dev-bin|libc6-dev|linux-libc-dev"
                             r"|(gcc|g\+\+|cpp)(-\d+)?(-[a-z0-9_-]+)?|lib(gcc|stdc\+\+|objc)-\d+-dev|libisl\d+|libmpc\d+"
                             r"|libmpfr\d+|libasan\d+|libtsan\d+|liblsan\d+|libubsan\d+|libitm\d+|libcc1-\d+"
                             r"|libquadmath\d+|libgomp\d+|libatomic\d+|libhwasan\d+|libdpkg-perl|musl-dev|fortify-headers"
                             r"|libmagic|file|patch|jansson)$")


def whole_layer(f, an, image, m: Measure, layer, line_of_layer, report, show) -> Finding:

    if f.details.get("base"):
        b = sum(m.layer_bytes(i) for i in range(report.base_layers))
        return measured(f, f"the base image's layers hold {human_bytes(b)}.", b, base_bytes=b)
    if layer is None:
        return f
    total = m.layer_bytes(layer)
    pkgs = m.package_bytes(layer)
    named = set(f.details.get("packages", []))
    tools = {n: b for n, b in pkgs.items()
             if n in named or toolchain_packages([n]) or _TOOLCHAIN_DEPS.match(n)}
    if tools:
        b = sum(tools.values())
        top = ", ".join(f"{n} {human_bytes(v)}" for n, v in sorted(tools.items(), key=lambda kv: -kv[1])[:5])
        text = (f"{len(tools)} toolchain package{'s' if len(tools) != 1 else ''} installed by line {f.line} "
                f"hold{'s' if len(tools) == 1 else ''} "
                f"{human_bytes(b)} ({top}); the whole layer adds {human_bytes(total)}.")
        return measured(f, text, b, toolchain_bytes=b, layer_bytes=total,
                         toolchain_packages=dict(sorted(tools.items(), key=lambda kv: -kv[1])))
    return measured(f, f"the layer of line {f.line} adds {human_bytes(total)} (everything this RUN installed; no "
                        "package database found to single out the toolchain).", total, layer_bytes=total)


CACHE_NAMES = {
    "apt-lists": "apt package lists (/var/lib/apt/lists)", "apk-cache": "apk index cache (/var/cache/apk)",
    "yum-cache": "yum cache (/var/cache/yum)", "dnf-cache": "dnf cache (/var/cache/dnf)",
    "zypper-cache": "zypper cache", "pip-cache": "pip cache (~/.cache/pip)", "uv-cache": "uv cache (~/.cache/uv)",
    "poetry-cache": "poetry cache", "npm-cache": "npm cache (~/.npm)", "yarn-cache": "yarn cache",
    "pnpm-store": "pnpm store", "gem-cache": "gem cache (.gem files)", "go-cache": "Go module and build caches",
    "cargo-cache": "cargo registry", "maven-repo": "Maven repository (~/.m2)", "gradle-cache": "Gradle cache (~/.gradle)",
    "conda-pkgs": "conda package cache", "apt-archives": "apt archives",
}
