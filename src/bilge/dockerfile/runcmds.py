"""The command families a RUN may call, one handler each, in one table (:data:`_HANDLERS`): apt-get/apt,
apk, yum/dnf/microdnf, zypper, pip/uv/poetry, npm/yarn/pnpm, gem/bundle, go, cargo, mvn/gradle, conda,
curl/wget/tar/unzip/git clone, rm/find, cp/mv/install, tee, chown/chmod and configuration setters.

A new family is one function and one line in the table."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping

from bilge.dockerfile.parse import join_path
from bilge.dockerfile.runmodel import PathOp, PkgOp, Write, _Ctx, _Facts, _pkg_names, _split_opts
from bilge.dockerfile.shell import Command

Handler = Callable[[str, list[str], Command, str, _Ctx, Mapping[str, str], _Facts, set[str]], None]

_APT_OPTS_WITH_VALUE = frozenset({"-o", "-t", "--target-release", "-c", "--config-file", "-a"})
_PIP_NAMES = re.compile(r"^(?:.*/)?pip(?:3(?:\.\d+)?)?$")
_PY_NAMES = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")


def _apt_get(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
             pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, _APT_OPTS_WITH_VALUE)
    if not pos:
        return
    sub, rest = pos[0], pos[1:]
    if sub == "update":
        f.cache("apt-lists", ["/var/lib/apt/lists"], text)
    elif sub in ("install", "reinstall", "build-dep"):
        f.packages.append(PkgOp("apt", "install", tuple(_pkg_names(rest, ctx, local)), text,
                                options=frozenset(opts)))
    elif sub in ("remove", "purge", "autoremove", "autopurge"):
        names = tuple(_pkg_names(rest, ctx, local))
        if names:
            f.packages.append(PkgOp("apt", "remove", names, text, options=frozenset(opts)))
    elif sub in ("clean", "autoclean"):
        f.cache_cleans.append(("apt-archives", text))


def _dpkg(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
          pipe_vars: set[str]) -> None:
    if any(a in ("-P", "--purge", "-r", "--remove") for a in args):
        names = [a for a in args if not a.startswith("-")]
        if names:
            f.packages.append(PkgOp("apt", "remove", tuple(names), text))


def _apk(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
         pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, frozenset({"-t", "--virtual", "-X", "--repository", "-p", "--root",
                                             "--cache-dir", "--arch"}))
    if not pos:
        return
    sub, rest = pos[0], pos[1:]
    no_cache = "--no-cache" in opts
    if sub in ("add", "update", "upgrade", "fix"):
        if not no_cache:
            f.cache("apk-cache", ["/var/cache/apk"], text)
    if sub == "add":
        virtual = next((o.split("=", 1)[1] for o in opts if o.startswith(("-t=", "--virtual="))), None)
        f.packages.append(PkgOp("apk", "install", tuple(_pkg_names(rest, ctx, local)), text, virtual,
                                frozenset(opts)))
    elif sub == "del":
        f.packages.append(PkgOp("apk", "remove", tuple(_pkg_names(rest, ctx, local)), text,
                                options=frozenset(opts)))
    elif sub == "cache" and rest[:1] in (["clean"], ["purge"]):
        f.cache_cleans.append(("apk-cache", text))


def _yum(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
         pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, frozenset({"--setopt", "--enablerepo", "--disablerepo", "-c",
                                             "--installroot", "--releasever"}))
    if not pos:
        return
    sub, rest = pos[0], pos[1:]
    kind = "dnf-cache" if name in ("dnf", "microdnf", "tdnf") else "yum-cache"
    cache_dir = "/var/cache/dnf" if kind == "dnf-cache" else "/var/cache/yum"
    if sub in ("install", "groupinstall", "update", "upgrade", "makecache", "reinstall") or (
            sub == "group" and rest[:1] == ["install"]):
        f.cache(kind, [cache_dir], text)
        if sub == "groupinstall" or sub == "group":
            groups = [" ".join(rest[1:] if sub == "group" else rest)]
            f.packages.append(PkgOp("yum", "install", tuple(g.lower() for g in groups), text))
        elif sub in ("install", "reinstall"):
            f.packages.append(PkgOp("yum", "install", tuple(_pkg_names(rest, ctx, local)), text))
    elif sub in ("remove", "erase", "autoremove"):
        names = tuple(_pkg_names(rest, ctx, local))
        if names:
            f.packages.append(PkgOp("yum", "remove", names, text))
    elif sub == "clean":
        f.cache_cleans.append((kind, text))


def _zypper(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
            pipe_vars: set[str]) -> None:
    pos, _opts = _split_opts(args)
    if pos and pos[0] in ("install", "in"):
        f.cache("zypper-cache", ["/var/cache/zypp"], text)
        f.packages.append(PkgOp("zypper", "install", tuple(_pkg_names(pos[1:], ctx, local)), text))
    elif pos and pos[0] in ("remove", "rm"):
        f.packages.append(PkgOp("zypper", "remove", tuple(_pkg_names(pos[1:], ctx, local)), text))
    elif pos and pos[0] in ("clean", "cc"):
        f.cache_cleans.append(("zypper-cache", text))


def _pip(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
         pipe_vars: set[str]) -> None:
    pargs = args[2:] if _PY_NAMES.match(cmd.name) else args
    pos, opts = _split_opts(pargs, frozenset({"-r", "--requirement", "-c", "--constraint", "-i", "--index-url",
                                              "--extra-index-url", "-f", "--find-links", "-t", "--target",
                                              "--prefix", "--root", "-w", "--wheel-dir", "-d", "--dest",
                                              "--cache-dir", "--platform", "--python-version", "-e"}))
    if pos and pos[0] in ("install", "wheel", "download"):
        if "--no-cache-dir" in opts:
            f.no_cache.add("pip-cache")
        dirs = [o.split("=", 1)[1] for o in opts if o.startswith("--cache-dir=")]
        f.cache("pip-cache", [ctx.path(dirs[0])] if dirs else [f"{ctx.home}/.cache/pip"], text)
    elif pos[:2] in (["cache", "purge"], ["cache", "remove"]):
        f.cache_cleans.append(("pip-cache", text))
    elif pos[:2] == ["config", "set"]:
        _config_write(f, ctx, cmd, text, "pip config", f"{ctx.home}/.config/pip/pip.conf")


def _uv(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
        pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args)
    if (pos[:2] in (["pip", "install"], ["pip", "sync"], ["tool", "install"]) or pos[:1] in (["sync"], ["add"])):
        if "--no-cache" in opts or "-n" in opts:
            f.no_cache.add("uv-cache")
        f.cache("uv-cache", [f"{ctx.home}/.cache/uv"], text)
    elif pos[:2] in (["cache", "clean"], ["cache", "prune"]):
        f.cache_cleans.append(("uv-cache", text))


def _poetry(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
            pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args)
    if pos[:1] in (["install"], ["add"], ["update"]):
        if "--no-cache" in opts:
            f.no_cache.add("poetry-cache")
        f.cache("poetry-cache", [f"{ctx.home}/.cache/pypoetry"], text)
    elif pos[:2] == ["cache", "clear"]:
        f.cache_cleans.append(("poetry-cache", text))


def _npm(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
         pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, frozenset({"--prefix", "--cache", "-w", "--workspace"}))
    if pos[:1] in (["install"], ["i"], ["ci"], ["add"], ["update"], ["install-clean"], ["isntall"]):
        f.cache("npm-cache", [f"{ctx.home}/.npm"], text)
        if not ({"-g", "--global"} & opts):
            f.creates.append(PathOp(join_path(ctx.cwd, "node_modules"), text, what="node_modules"))
    elif pos[:2] in (["cache", "clean"], ["cache", "clear"], ["cache", "rm"]):
        f.cache_cleans.append(("npm-cache", text))
    elif pos[:1] in (["prune"], ["uninstall"], ["rm"], ["remove"]):
        f.removes.append(PathOp(join_path(ctx.cwd, "node_modules"), text, partial=True, what="node_modules"))
    elif pos[:2] == ["config", "set"] or pos[:1] == ["set"]:
        _config_write(f, ctx, cmd, text, "npm config", f"{ctx.home}/.npmrc")


def _yarn(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
          pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, frozenset({"--cache-folder", "--modules-folder", "--cwd"}))
    if not pos or pos[0] in ("install", "add") or pos[:2] == ["global", "add"]:
        folder = [o.split("=", 1)[1] for o in opts if o.startswith("--cache-folder=")]
        default = "/usr/local/share/.cache/yarn" if ctx.home == "/root" else f"{ctx.home}/.cache/yarn"
        f.cache("yarn-cache", [ctx.path(folder[0])] if folder else [default], text)
        if pos[:1] != ["global"]:
            f.creates.append(PathOp(join_path(ctx.cwd, "node_modules"), text, what="node_modules"))
    elif pos[:2] in (["cache", "clean"], ["cache", "clear"]):
        f.cache_cleans.append(("yarn-cache", text))
    elif pos[:1] == ["remove"]:
        f.removes.append(PathOp(join_path(ctx.cwd, "node_modules"), text, partial=True, what="node_modules"))
    elif pos[:2] == ["config", "set"]:
        _config_write(f, ctx, cmd, text, "yarn config", f"{ctx.home}/.yarnrc")


def _pnpm(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
          pipe_vars: set[str]) -> None:
    pos, _opts = _split_opts(args)
    if pos[:1] in (["install"], ["i"], ["add"]) or not pos:
        f.cache("pnpm-store", [f"{ctx.home}/.local/share/pnpm/store"], text)
        f.creates.append(PathOp(join_path(ctx.cwd, "node_modules"), text, what="node_modules"))
    elif pos[:2] == ["store", "prune"]:
        f.cache_cleans.append(("pnpm-store", text))
    elif pos[:1] == ["prune"]:
        f.removes.append(PathOp(join_path(ctx.cwd, "node_modules"), text, partial=True, what="node_modules"))


def _gem(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
         pipe_vars: set[str]) -> None:
    pos, _opts = _split_opts(args, frozenset({"-v", "--version", "-i", "--install-dir", "-n", "--bindir",
                                              "--source", "-s"}))
    if pos[:1] in (["install"], ["update"]):
        gem_home = ctx.vars.get("GEM_HOME") or "/usr/local/bundle"
        f.cache("gem-cache", [f"{gem_home}/cache"], text)
    elif pos[:1] == ["uninstall"]:
        gem_home = ctx.vars.get("GEM_HOME") or "/usr/local/bundle"
        f.removes.append(PathOp(f"{gem_home}/gems", text, partial=True, what="gems"))


def _bundle(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
            pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, frozenset({"--jobs", "-j", "--retry", "--path", "--without", "--with",
                                             "--gemfile"}))
    bundle_path = _bundle_path(ctx, opts)
    if pos[:1] in (["install"], ["update"]) or (not pos and not opts):
        paths = [f"{bundle_path}/cache", f"{bundle_path}/ruby/*/cache"]
        f.cache("gem-cache", paths, text)
        f.creates.append(PathOp(bundle_path, text, what="gems"))
    elif pos[:1] == ["clean"]:
        f.removes.append(PathOp(bundle_path, text, partial=True, what="unused gems"))
    elif pos[:1] == ["config"]:
        _config_write(f, ctx, cmd, text, "bundle config",
                      f"{ctx.home}/.bundle/config" if "--global" in opts or "--local" not in opts else
                      join_path(ctx.cwd, ".bundle/config"))


def _go(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
        pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, frozenset({"-o", "-ldflags", "-tags", "-C", "-p", "-gcflags"}))
    if pos[:1] in (["build"], ["install"], ["test"], ["run"], ["generate"], ["vet"], ["get"]) or pos[:2] == ["mod", "download"]:
        gopath = ctx.vars.get("GOPATH")
        mod = [ctx.vars["GOMODCACHE"]] if ctx.vars.get("GOMODCACHE") else (
            [f"{gopath}/pkg/mod"] if gopath else ["/go/pkg/mod", f"{ctx.home}/go/pkg/mod"])
        paths = [*mod, ctx.vars.get("GOCACHE") or f"{ctx.home}/.cache/go-build"]
        f.cache("go-cache", paths, text)
        out = next((o.split("=", 1)[1] for o in opts if o.startswith("-o=")), None)
        if out:
            f.creates.append(PathOp(ctx.path(out, local), text, what="build output"))
    elif pos[:1] == ["clean"] and ({"-modcache", "-cache"} & opts):
        f.cache_cleans.append(("go-cache", text))


def _cargo(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
           pipe_vars: set[str]) -> None:
    pos, _opts = _split_opts(args)
    if pos[:1] in (["build"], ["install"], ["fetch"]):
        home = ctx.vars.get("CARGO_HOME") or f"{ctx.home}/.cargo"
        f.cache("cargo-cache", [f"{home}/registry", f"{home}/git"], text)


def _mvn(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
         pipe_vars: set[str]) -> None:
    repo = next((a.split("=", 1)[1] for a in args if a.startswith("-Dmaven.repo.local=")), None)
    f.cache("maven-repo", [ctx.path(repo, local)] if repo else [f"{ctx.home}/.m2/repository"], text)


def _gradle(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
            pipe_vars: set[str]) -> None:
    home = ctx.vars.get("GRADLE_USER_HOME") or f"{ctx.home}/.gradle"
    f.cache("gradle-cache", [home], text)


def _conda(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
           pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, frozenset({"-n", "--name", "-p", "--prefix", "-c", "--channel", "-f", "--file"}))
    if pos[:1] in (["install"], ["create"], ["update"]) or pos[:2] == ["env", "create"]:
        f.cache("conda-pkgs", [(ctx.vars.get("CONDA_DIR") or "/opt/conda") + "/pkgs"], text)
    elif pos[:1] == ["clean"]:
        f.cache_cleans.append(("conda-pkgs", text))


def _rm(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
        pipe_vars: set[str]) -> None:
    pos, _opts = _split_opts(args)
    for p in pos:
        f.removes.append(PathOp(ctx.path(p, local), text))


def _find_cmd(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
              pipe_vars: set[str]) -> None:
    roots = []
    for a in args:
        if a.startswith("-") or a in ("(", "!", ")"):
            break
        roots.append(a)
    deletes = "-delete" in args or any(
        args[i] in ("-exec", "-execdir") and i + 1 < len(args) and args[i + 1].rsplit("/", 1)[-1] in ("rm", "rmdir")
        for i in range(len(args)))
    if deletes:
        for r in roots or ["."]:
            f.removes.append(PathOp(ctx.path(r, local), text, partial=True))
    chowns = any(args[i] in ("-exec", "-execdir") and i + 1 < len(args) and args[i + 1] in ("chown", "chmod", "chgrp")
                 for i in range(len(args)))
    if chowns:
        for r in roots or ["."]:
            f.chowns.append(PathOp(ctx.path(r, local), text, partial=True))


def _chown(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
           pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, frozenset({"--reference", "--from"}))
    recursive = bool({"-R", "--recursive"} & opts) or any(
        o.startswith("-") and not o.startswith("--") and "R" in o for o in opts)
    if recursive and len(pos) >= 2:
        for p in pos[1:]:
            f.chowns.append(PathOp(ctx.path(p, local), text))


def _curl(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
          pipe_vars: set[str]) -> None:
    _download(name, args, ctx, local, text, f, cmd)


def _tar(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
         pipe_vars: set[str]) -> None:
    if any(a.startswith("-") and "x" in a.lstrip("-") and not a.startswith("--") or a in ("x", "--extract")
           or (not a.startswith("-") and i == 0 and "x" in a) for i, a in enumerate(args)):
        dest = None
        for i, a in enumerate(args):
            if a in ("-C", "--directory") and i + 1 < len(args):
                dest = args[i + 1]
            elif a.startswith("--directory="):
                dest = a.split("=", 1)[1]
        f.creates.append(PathOp(ctx.path(dest or ".", local), text, partial=True, what="extracted files"))


def _unzip(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
           pipe_vars: set[str]) -> None:
    dest = next((args[i + 1] for i, a in enumerate(args) if a == "-d" and i + 1 < len(args)), ".")
    f.creates.append(PathOp(ctx.path(dest, local), text, partial=True, what="extracted files"))


def _git(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
         pipe_vars: set[str]) -> None:
    pos, opts = _split_opts(args, frozenset({"-C", "-c", "--depth", "-b", "--branch", "--origin"}))
    if pos[:1] == ["clone"] and len(pos) >= 2:
        dest = pos[2] if len(pos) >= 3 else posixpath.basename(pos[1].rstrip("/")).removesuffix(".git")
        f.creates.append(PathOp(ctx.path(dest, local), text, what="git clone"))
    elif pos[:1] == ["config"]:
        path = f"{ctx.home}/.gitconfig" if "--global" in opts else (
            "/etc/gitconfig" if "--system" in opts else join_path(ctx.cwd, ".git/config"))
        _config_write(f, ctx, cmd, text, "git config", path)


def _cp(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
        pipe_vars: set[str]) -> None:
    pos, _opts = _split_opts(args, frozenset({"-t", "--target-directory", "-m", "--mode", "-o", "-g", "--owner",
                                              "--group"}))
    if len(pos) >= 2:
        dest = ctx.path(pos[-1], local)
        src_secret = any("/run/secrets/" in p for p in pos[:-1])
        f.creates.append(PathOp(dest, text, what="copied files"))
        if src_secret:
            f.writes.append(Write(dest, text, frozenset(), True, name))
        if name == "mv":
            for p in pos[:-1]:
                f.removes.append(PathOp(ctx.path(p, local), text))


def _tee(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str], f: _Facts,
         pipe_vars: set[str]) -> None:
    pos, _opts = _split_opts(args)
    for p in pos:
        dest = ctx.path(p, local)
        f.writes.append(Write(dest, text, frozenset(pipe_vars), False, "tee"))
        f.creates.append(PathOp(dest, text, what="file"))


# The command families, by the command's base name.
_HANDLERS: dict[str, Handler] = {
    "apt-get": _apt_get, "apt": _apt_get, "aptitude": _apt_get, "dpkg": _dpkg, "apk": _apk, "yum": _yum,
    "dnf": _yum, "microdnf": _yum, "tdnf": _yum, "zypper": _zypper, "uv": _uv, "poetry": _poetry,
    "npm": _npm, "yarn": _yarn, "pnpm": _pnpm, "gem": _gem, "bundle": _bundle, "bundler": _bundle,
    "go": _go, "cargo": _cargo, "mvn": _mvn, "mvnw": _mvn, "gradle": _gradle, "gradlew": _gradle,
    "conda": _conda, "mamba": _conda, "micromamba": _conda, "rm": _rm, "rmdir": _rm, "unlink": _rm,
    "find": _find_cmd, "chown": _chown, "chmod": _chown, "chgrp": _chown, "curl": _curl, "wget": _curl,
    "tar": _tar, "bsdtar": _tar, "unzip": _unzip, "git": _git, "cp": _cp, "mv": _cp, "install": _cp,
    "tee": _tee,
}


def _is_pip(cmd: Command, args: list[str]) -> bool:
    return bool(_PIP_NAMES.match(cmd.name) or (_PY_NAMES.match(cmd.name) and args[:2] == ["-m", "pip"]))


def recognise(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str],
              f: _Facts, pipe_vars: set[str]) -> None:
    """Record what one simple command of a RUN does (packages, caches, paths, secret reads) in ``f``."""
    for w in cmd.argv:
        for piece in [w.text, *w.subs]:
            for m in re.finditer(r"/run/secrets/[A-Za-z0-9_.\-]+", piece):
                f.secret_reads.append(m.group(0))
    handler = _pip if _is_pip(cmd, args) else _HANDLERS.get(name)
    if handler is not None:
        handler(name, args, cmd, text, ctx, local, f, pipe_vars)


def _config_write(f: _Facts, ctx: _Ctx, cmd: Command, text: str, via: str, path: str) -> None:
    names = set(cmd.vars)
    reads = any("/run/secrets/" in s for w in cmd.argv for s in (w.text, *w.subs))
    f.writes.append(Write(path, text, frozenset(names), reads, via))


def _bundle_path(ctx: _Ctx, opts: set[str]) -> str:
    explicit = next((o.split("=", 1)[1] for o in opts if o.startswith("--path=")), None)
    if explicit:
        return ctx.path(explicit)
    if ctx.vars.get("BUNDLE_PATH"):
        return ctx.path(ctx.vars["BUNDLE_PATH"])
    if str(ctx.vars.get("BUNDLE_DEPLOYMENT", "")).lower() in ("1", "true"):
        return join_path(ctx.cwd, "vendor/bundle")
    return ctx.vars.get("GEM_HOME") or "/usr/local/bundle"


def _download(name: str, args: list[str], ctx: _Ctx, local: Mapping[str, str], text: str, f: _Facts,
              cmd: Command) -> None:
    urls = [a for a in args if re.match(r"^[a-z]+://", a)]
    out = None
    remote_name = False
    for i, a in enumerate(args):
        if name == "curl":
            if a in ("-o", "--output") and i + 1 < len(args):
                out = args[i + 1]
            elif a.startswith("--output="):
                out = a.split("=", 1)[1]
            elif a in ("-O", "--remote-name") or (a.startswith("-") and not a.startswith("--") and "O" in a[1:]
                                                   and "o" not in a[1:]):
                remote_name = True
            elif a.startswith("-") and not a.startswith("--") and a.endswith("o") and i + 1 < len(args):
                out = args[i + 1]
        else:
            if a in ("-O", "--output-document") and i + 1 < len(args):
                out = args[i + 1]
            elif a.startswith("--output-document="):
                out = a.split("=", 1)[1]
            elif a.startswith("-") and not a.startswith("--") and a.endswith("O") and i + 1 < len(args):
                out = args[i + 1]
            elif a in ("-P", "--directory-prefix") and i + 1 < len(args):
                out = args[i + 1].rstrip("/") + "/" + (posixpath.basename(urls[0]) if urls else "")
    if out == "-" or (name == "curl" and out is None and not remote_name):
        return  # to stdout (piped into tar, sh ...)
    if out is None and urls:
        out = posixpath.basename(urls[0].split("?", 1)[0].rstrip("/"))
    if out:
        f.creates.append(PathOp(ctx.path(out, local), text, what="download"))


