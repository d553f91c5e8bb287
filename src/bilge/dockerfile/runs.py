"""What a RUN does: the packages it installs and removes, the caches it fills, the paths it creates,
deletes, rewrites and chowns, the files it writes and the secrets it reads.

Built on :mod:`bilge.dockerfile.shell`. Recognises apt-get/apt, apk, yum/dnf/microdnf, zypper, pip/uv/
poetry, npm/yarn/pnpm, gem/bundle, go, cargo, mvn/gradle, conda, curl/wget/tar/unzip/git clone, rm/find,
cp/mv, chown/chmod and configuration setters (git config, bundle config, npm config ...).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bilge.dockerfile.parse import Instruction, Mount, Var, join_path
from bilge.dockerfile.shell import Command, parse_script, split_exec_form


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


# --- the recognisers ---------------------------------------------------------------------------------------

_APT_OPTS_WITH_VALUE = frozenset({"-o", "-t", "--target-release", "-c", "--config-file", "-a"})
_PIP_NAMES = re.compile(r"^(?:.*/)?pip(?:3(?:\.\d+)?)?$")
_PY_NAMES = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")


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


def analyze_run(ins: Instruction) -> RunFacts:
    """Model one RUN instruction (ONBUILD RUN too)."""
    mounts = ins.mounts
    commands, shell, script = _commands(ins)
    ctx = _Ctx(ins)
    f = _Facts()
    named: set[str] = set()
    for cmd in commands:
        named |= cmd.vars
    pipe_vars: set[str] = set()
    for cmd in commands:
        pipe_vars = (pipe_vars if cmd.piped else set()) | cmd.vars
        local = {k: ctx.expand(v.text) for k, v in cmd.assigns}
        if not cmd.argv:
            if cmd.depth == 0:
                ctx.vars.update(local)
            continue
        text = str(cmd)
        name = cmd.name.rsplit("/", 1)[-1]
        args = cmd.args
        if name == "export" or name == "declare" or name == "local":
            for a in args:
                k, eq, v = a.partition("=")
                if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                    ctx.vars[k] = ctx.expand(v)
            continue
        if name == "cd" and cmd.depth == 0:
            target = args[0] if args else ctx.home
            if target != "-":
                ctx.cwd = ctx.path(target, local)
            continue
        _recognise(name, args, cmd, text, ctx, local, f, pipe_vars)
        for r in cmd.redirects:
            if r.op in (">", ">>", ">|", "&>", "&>>") and r.target is not None and (r.fd in (None, "1") or r.op.startswith("&")):
                dest = ctx.path(r.target.text, local)
                if dest.startswith("/dev/") or dest.startswith("/proc/"):
                    continue
                content_vars = set(pipe_vars) - set(r.target.vars)
                reads = _reads_secret(cmd, commands)
                f.writes.append(Write(dest, text, frozenset(content_vars), reads, "redirect"))
                f.creates.append(PathOp(dest, text, what="file"))
    # caches: cleaned in the same RUN, in a cache/tmpfs mount, or turned off
    caches = []
    env = {k: v.value for k, v in ins.scope.items() if v.value is not None}
    for kind, (paths, text) in f.caches.items():
        caches.append(CacheUse(kind, paths, text, _cache_cleaned(kind, paths, f, mounts, env)))
    # cached paths that stay in the layer are created by this RUN
    creates = list(f.creates)
    for c in caches:
        if c.cleaned is None:
            creates += [PathOp(p, c.text, what=c.kind) for p in c.paths]
    return RunFacts(
        instruction=ins, commands=tuple(commands), shell=shell, mounts=mounts, vars_named=frozenset(named),
        packages=tuple(f.packages), caches=tuple(caches), creates=tuple(creates), removes=tuple(f.removes),
        cache_cleans=tuple(f.cache_cleans), writes=tuple(f.writes), chowns=tuple(f.chowns),
        secret_reads=tuple(f.secret_reads), script=script,
    )


def _commands(ins: Instruction) -> tuple[list[Command], bool, str]:
    if ins.json:
        cmds = split_exec_form(list(ins.args))
        return cmds, any(c.depth > 0 for c in cmds), " ".join(ins.args)
    shell = ins.shell
    if shell and shell[0].rsplit("/", 1)[-1].lower() in ("powershell", "pwsh", "cmd", "cmd.exe", "powershell.exe"):
        return [], False, " ".join(ins.args)
    line = " ".join(ins.args)
    if ins.heredocs:
        only = re.fullmatch(r"\s*<<-?\s*(['\"]?)([A-Za-z0-9_.-]+)\1\s*", line)
        if only and len(ins.heredocs) == 1:
            body = ins.heredocs[0].content
            first = body.split("\n", 1)[0]
            if first.startswith("#!") and not re.search(r"\b(sh|bash|ash|dash)\b", first):
                return [], False, body
            return parse_script(body), True, body
        # a command line reading heredocs: rebuild the script so the reader sees the bodies
        script = line + "\n" + "".join(f"{h.content}{h.name}\n" for h in ins.heredocs)
        return parse_script(script), True, script
    return parse_script(line), True, line


def _reads_secret(cmd: Command, commands: list[Command]) -> bool:
    texts = [w.text for w in cmd.argv] + [r.target.text for r in cmd.redirects if r.target and r.op.startswith("<")]
    for w in cmd.argv:
        texts += list(w.subs)
    return any("/run/secrets/" in t for t in texts)


def _recognise(name: str, args: list[str], cmd: Command, text: str, ctx: _Ctx, local: Mapping[str, str],
               f: _Facts, pipe_vars: set[str]) -> None:
    for w in cmd.argv:
        for piece in [w.text, *w.subs]:
            for m in re.finditer(r"/run/secrets/[A-Za-z0-9_.\-]+", piece):
                f.secret_reads.append(m.group(0))
    # --- system package managers
    if name in ("apt-get", "apt", "aptitude"):
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
        return
    if name == "dpkg":
        if any(a in ("-P", "--purge", "-r", "--remove") for a in args):
            names = [a for a in args if not a.startswith("-")]
            if names:
                f.packages.append(PkgOp("apt", "remove", tuple(names), text))
        return
    if name == "apk":
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
        return
    if name in ("yum", "dnf", "microdnf", "tdnf"):
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
        return
    if name == "zypper":
        pos, _opts = _split_opts(args)
        if pos and pos[0] in ("install", "in"):
            f.cache("zypper-cache", ["/var/cache/zypp"], text)
            f.packages.append(PkgOp("zypper", "install", tuple(_pkg_names(pos[1:], ctx, local)), text))
        elif pos and pos[0] in ("remove", "rm"):
            f.packages.append(PkgOp("zypper", "remove", tuple(_pkg_names(pos[1:], ctx, local)), text))
        elif pos and pos[0] in ("clean", "cc"):
            f.cache_cleans.append(("zypper-cache", text))
        return
    # --- language package managers
    if _PIP_NAMES.match(cmd.name) or (_PY_NAMES.match(cmd.name) and args[:2] == ["-m", "pip"]):
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
        return
    if name == "uv":
        pos, opts = _split_opts(args)
        if (pos[:2] in (["pip", "install"], ["pip", "sync"], ["tool", "install"]) or pos[:1] in (["sync"], ["add"])):
            if "--no-cache" in opts or "-n" in opts:
                f.no_cache.add("uv-cache")
            f.cache("uv-cache", [f"{ctx.home}/.cache/uv"], text)
        elif pos[:2] in (["cache", "clean"], ["cache", "prune"]):
            f.cache_cleans.append(("uv-cache", text))
        return
    if name == "poetry":
        pos, opts = _split_opts(args)
        if pos[:1] in (["install"], ["add"], ["update"]):
            if "--no-cache" in opts:
                f.no_cache.add("poetry-cache")
            f.cache("poetry-cache", [f"{ctx.home}/.cache/pypoetry"], text)
        elif pos[:2] == ["cache", "clear"]:
            f.cache_cleans.append(("poetry-cache", text))
        return
    if name == "npm":
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
        return
    if name == "yarn":
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
        return
    if name == "pnpm":
        pos, _opts = _split_opts(args)
        if pos[:1] in (["install"], ["i"], ["add"]) or not pos:
            f.cache("pnpm-store", [f"{ctx.home}/.local/share/pnpm/store"], text)
            f.creates.append(PathOp(join_path(ctx.cwd, "node_modules"), text, what="node_modules"))
        elif pos[:2] == ["store", "prune"]:
            f.cache_cleans.append(("pnpm-store", text))
        elif pos[:1] == ["prune"]:
            f.removes.append(PathOp(join_path(ctx.cwd, "node_modules"), text, partial=True, what="node_modules"))
        return
    if name == "gem":
        pos, _opts = _split_opts(args, frozenset({"-v", "--version", "-i", "--install-dir", "-n", "--bindir",
                                                  "--source", "-s"}))
        if pos[:1] in (["install"], ["update"]):
            gem_home = ctx.vars.get("GEM_HOME") or "/usr/local/bundle"
            f.cache("gem-cache", [f"{gem_home}/cache"], text)
        elif pos[:1] == ["uninstall"]:
            gem_home = ctx.vars.get("GEM_HOME") or "/usr/local/bundle"
            f.removes.append(PathOp(f"{gem_home}/gems", text, partial=True, what="gems"))
        return
    if name in ("bundle", "bundler"):
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
        return
    if name == "go":
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
        return
    if name == "cargo":
        pos, _opts = _split_opts(args)
        if pos[:1] in (["build"], ["install"], ["fetch"]):
            home = ctx.vars.get("CARGO_HOME") or f"{ctx.home}/.cargo"
            f.cache("cargo-cache", [f"{home}/registry", f"{home}/git"], text)
        return
    if name in ("mvn", "mvnw") or cmd.name.endswith("/mvnw"):
        repo = next((a.split("=", 1)[1] for a in args if a.startswith("-Dmaven.repo.local=")), None)
        f.cache("maven-repo", [ctx.path(repo, local)] if repo else [f"{ctx.home}/.m2/repository"], text)
        return
    if name in ("gradle", "gradlew") or cmd.name.endswith("/gradlew"):
        home = ctx.vars.get("GRADLE_USER_HOME") or f"{ctx.home}/.gradle"
        f.cache("gradle-cache", [home], text)
        return
    if name in ("conda", "mamba", "micromamba"):
        pos, opts = _split_opts(args, frozenset({"-n", "--name", "-p", "--prefix", "-c", "--channel", "-f", "--file"}))
        if pos[:1] in (["install"], ["create"], ["update"]) or pos[:2] == ["env", "create"]:
            f.cache("conda-pkgs", [(ctx.vars.get("CONDA_DIR") or "/opt/conda") + "/pkgs"], text)
        elif pos[:1] == ["clean"]:
            f.cache_cleans.append(("conda-pkgs", text))
        return
    # --- files
    if name in ("rm", "rmdir", "unlink"):
        pos, _opts = _split_opts(args)
        for p in pos:
            f.removes.append(PathOp(ctx.path(p, local), text))
        return
    if name == "find":
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
        return
    if name in ("chown", "chmod", "chgrp"):
        pos, opts = _split_opts(args, frozenset({"--reference", "--from"}))
        recursive = bool({"-R", "--recursive"} & opts) or any(
            o.startswith("-") and not o.startswith("--") and "R" in o for o in opts)
        if recursive and len(pos) >= 2:
            for p in pos[1:]:
                f.chowns.append(PathOp(ctx.path(p, local), text))
        return
    if name in ("curl", "wget"):
        _download(name, args, ctx, local, text, f, cmd)
        return
    if name in ("tar", "bsdtar"):
        if any(a.startswith("-") and "x" in a.lstrip("-") and not a.startswith("--") or a in ("x", "--extract")
               or (not a.startswith("-") and i == 0 and "x" in a) for i, a in enumerate(args)):
            dest = None
            for i, a in enumerate(args):
                if a in ("-C", "--directory") and i + 1 < len(args):
                    dest = args[i + 1]
                elif a.startswith("--directory="):
                    dest = a.split("=", 1)[1]
            f.creates.append(PathOp(ctx.path(dest or ".", local), text, partial=True, what="extracted files"))
        return
    if name == "unzip":
        dest = next((args[i + 1] for i, a in enumerate(args) if a == "-d" and i + 1 < len(args)), ".")
        f.creates.append(PathOp(ctx.path(dest, local), text, partial=True, what="extracted files"))
        return
    if name == "git":
        pos, opts = _split_opts(args, frozenset({"-C", "-c", "--depth", "-b", "--branch", "--origin"}))
        if pos[:1] == ["clone"] and len(pos) >= 2:
            dest = pos[2] if len(pos) >= 3 else posixpath.basename(pos[1].rstrip("/")).removesuffix(".git")
            f.creates.append(PathOp(ctx.path(dest, local), text, what="git clone"))
        elif pos[:1] == ["config"]:
            path = f"{ctx.home}/.gitconfig" if "--global" in opts else (
                "/etc/gitconfig" if "--system" in opts else join_path(ctx.cwd, ".git/config"))
            _config_write(f, ctx, cmd, text, "git config", path)
        return
    if name in ("cp", "mv", "install"):
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
        return
    if name == "tee":
        pos, _opts = _split_opts(args)
        for p in pos:
            dest = ctx.path(p, local)
            f.writes.append(Write(dest, text, frozenset(pipe_vars), False, "tee"))
            f.creates.append(PathOp(dest, text, what="file"))
        return


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


def _cache_cleaned(kind: str, paths: tuple[str, ...], f: _Facts, mounts: tuple[Mount, ...],
                   env: Mapping[str, str]) -> str | None:
    if kind in f.no_cache:
        return "told not to cache"
    for k, how in f.cache_cleans:
        if k == kind:
            return f"cleaned by `{how}`"
    for m in mounts:
        if m.type in ("cache", "tmpfs", "bind", "secret") and m.target:
            t = m.target.rstrip("/") or "/"
            for p in paths:
                if under(p, t) or under(glob_prefix(p), t) or (kind == "apt-lists" and t in ("/var/lib/apt", "/var/lib/apt/lists")):
                    return f"in a --mount=type={m.type} at {m.target}"
    disable_env = {"pip-cache": "PIP_NO_CACHE_DIR", "uv-cache": "UV_NO_CACHE", "poetry-cache": "POETRY_NO_CACHE"}
    var = disable_env.get(kind)
    if var and env.get(var, "").strip().lower() not in ("", "0", "false", "no", "off"):
        return f"{var} is set"
    for r in f.removes:
        rp = strip_glob_tail(r.path)
        for p in paths:
            pp = strip_glob_tail(p)
            if under(pp, rp) or under(rp, glob_prefix(pp)) and _cache_word(kind, r.path):
                return f"removed by `{r.text}`"
            if "$" in r.path or "`" in r.path:  # "$(gem env gemdir)"/cache, "${BUNDLE_PATH}"/cache ...
                if _cache_word(kind, r.path):
                    return f"removed by `{r.text}`"
    return None


def _cache_word(kind: str, path: str) -> bool:
    """A removal whose path names the cache of this kind, even through unknown variables."""
    words = {
        "gem-cache": ("cache",), "apt-lists": ("lists",), "apk-cache": ("apk",), "pip-cache": ("pip",),
        "npm-cache": (".npm",), "yarn-cache": ("yarn",), "go-cache": ("go-build", "pkg/mod"),
        "maven-repo": (".m2",), "gradle-cache": (".gradle",), "conda-pkgs": ("pkgs",), "uv-cache": ("uv",),
        "pnpm-store": ("pnpm",), "poetry-cache": ("pypoetry",), "cargo-cache": ("registry", ".cargo"),
    }.get(kind, ())
    return any(w in path for w in words)


# --- used by rules: what a variable scope says about a RUN --------------------------------------------------

def scope_value(scope: Mapping[str, Var], name: str) -> str | None:
    v = scope.get(name)
    return v.value if v else None
