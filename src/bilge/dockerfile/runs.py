"""What a RUN does: the packages it installs and removes, the caches it fills, the paths it creates,
deletes, rewrites and chowns, the files it writes and the secrets it reads.

Built on :mod:`bilge.dockerfile.shell`. Recognises apt-get/apt, apk, yum/dnf/microdnf, zypper, pip/uv/
poetry, npm/yarn/pnpm, gem/bundle, go, cargo, mvn/gradle, conda, curl/wget/tar/unzip/git clone, rm/find,
cp/mv, chown/chmod and configuration setters (git config, bundle config, npm config ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bilge.dockerfile.parse import Instruction, Mount
from bilge.dockerfile.runcmds import recognise
from bilge.dockerfile.runmodel import (
    CacheUse,
    PathOp,
    PkgOp,
    RunFacts,
    Write,
    _Ctx,
    _Facts,
    glob_prefix,
    strip_glob_tail,
    under,
)
from bilge.dockerfile.shell import Command, parse_script, split_exec_form

__all__ = ["CacheUse", "PathOp", "PkgOp", "RunFacts", "Write", "analyze_run", "glob_prefix", "strip_glob_tail", "under"]


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
        recognise(name, args, cmd, text, ctx, local, f, pipe_vars)
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
