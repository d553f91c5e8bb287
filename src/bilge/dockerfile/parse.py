"""The Dockerfile model: instructions, stages, ARG/ENV scope, WORKDIR/USER, pragmas.

Built on BuildKit's own parser (the ``dockerfile`` package), so continuation lines, heredocs, the
``escape`` directive, flags and JSON forms parse exactly as Docker parses them. On top of it this module
checks what BuildKit's instruction layer would reject (unknown instruction, no FROM, COPY without a
destination ...), and works out for every instruction which stage it belongs to and which ARG/ENV
variables, WORKDIR and USER are in effect when it runs. The shell commands of each RUN are modelled in
:mod:`bilge.dockerfile.runs`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import dockerfile as _bk

from bilge.dockerfile.reading import DockerfileParseError, read_text
from bilge.errors import BilgeError

KNOWN_INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
# Build args BuildKit defines for every build; never recorded in history unless declared.
BUILTIN_ARGS = frozenset({
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT", "BUILDPLATFORM", "BUILDOS", "BUILDARCH",
    "BUILDVARIANT", "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy",
    "https_proxy", "ftp_proxy", "no_proxy", "all_proxy", "BUILDKIT_INLINE_CACHE", "SOURCE_DATE_EPOCH",
    "BUILDKIT_SYNTAX", "BUILDKIT_CONTEXT_KEEP_GIT_DIR", "BUILDKIT_MULTI_PLATFORM", "BUILDKIT_SBOM_SCAN_STAGE",
})

_PRAGMA = re.compile(r"^\s*#\s*bilge\s*:\s*(ignore-file|ignore)\s*(?:=\s*([A-Za-z0-9_,\-\s*]+))?\s*$", re.I)


@dataclass(frozen=True)
class Var:
    """An ARG or ENV binding."""

    name: str
    value: str | None  # expanded value; None for an ARG declared without a default
    kind: str  # "arg" | "env" | "meta" (ARG before the first FROM)
    line: int
    stage: int  # -1 for meta args
    raw: str | None = None  # the value as written, before expansion


@dataclass(frozen=True)
class Mount:
    type: str
    target: str | None
    id: str | None = None
    source: str | None = None
    from_: str | None = None
    env: str | None = None
    raw: str = ""


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    fd: int = 0


@dataclass(frozen=True)
class Instruction:
    index: int
    keyword: str  # upper case; for ONBUILD the keyword of the trigger
    line: int
    end_line: int
    original: str
    flags: tuple[str, ...]
    args: tuple[str, ...]
    json: bool
    heredocs: tuple[Heredoc, ...] = ()
    onbuild: bool = False
    stage: int = -1  # -1 before the first FROM
    workdir: str = "/"
    user: str = "root"
    shell: tuple[str, ...] = ("/bin/sh", "-c")
    scope: Mapping[str, Var] = field(default_factory=dict)  # ARG/ENV visible when it runs

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value`` (last one wins), "" for a bare ``--name``, None when absent."""
        out: str | None = None
        for f in self.flags:
            key, eq, value = f.lstrip("-").partition("=")
            if key == name:
                out = value if eq else ""
        return out

    def flag_all(self, name: str) -> list[str]:
        out = []
        for f in self.flags:
            key, eq, value = f.lstrip("-").partition("=")
            if key == name:
                out.append(value)
        return out

    @property
    def mounts(self) -> tuple[Mount, ...]:
        return tuple(parse_mount(m) for m in self.flag_all("mount"))

    def short(self, width: int = 72) -> str:
        """The instruction on one line, shortened for messages."""
        text = self.original
        if self.heredocs:
            text = text.split("\n", 1)[0]
        text = re.sub(r"\s+", " ", text).strip()
        return text if len(text) <= width else text[: width - 1] + "…"

    def expand(self, word: str) -> str:
        return expand(word, self.scope)


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: str  # the FROM image as written, variables expanded
    line: int
    parent: int | None  # the stage it is built FROM, when it is one
    platform: str | None
    instructions: tuple[Instruction, ...]

    @property
    def label(self) -> str:
        return f'"{self.name}"' if self.name else f"#{self.index}"


@dataclass(frozen=True)
class Dockerfile:
    path: str
    text: str
    instructions: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    meta_args: tuple[Var, ...]
    escape: str = "\\"
    pragmas: Mapping[int, frozenset[str]] = field(default_factory=dict)  # instruction index -> rule ids
    file_ignores: frozenset[str] = frozenset()

    def stage_ref(self, ref: str | None) -> Stage | None:
        """The stage a ``--from``/``FROM`` reference names (by name, case-insensitive, or index)."""
        if ref is None:
            return None
        for st in self.stages:
            if st.name and st.name.lower() == ref.lower():
                return st
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    def target(self, name: str | None = None) -> Stage:
        if not self.stages:
            raise BilgeError(f"{self.path}: no build stage")
        if name is None:
            return self.stages[-1]
        st = self.stage_ref(name)
        if st is None:
            names = ", ".join(s.name for s in self.stages if s.name) or "none"
            raise BilgeError(f"{self.path}: no stage named {name!r} (stages: {names})")
        return st

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, nearest first."""
        out = [stage]
        seen = {stage.index}
        while out[-1].parent is not None and out[-1].parent not in seen:
            seen.add(out[-1].parent)
            out.append(self.stages[out[-1].parent])
        return out

    def copy_sources(self, stage: Stage) -> list[tuple[Instruction, Stage | None, str]]:
        """(instruction, source stage or None for an external image, reference) for every COPY --from / mount from."""
        out = []
        for ins in stage.instructions:
            refs = []
            if ins.keyword in ("COPY", "ADD") and ins.flag("from"):
                refs.append(ins.expand(ins.flag("from") or ""))
            if ins.keyword == "RUN":
                refs += [m.from_ for m in ins.mounts if m.from_]
            for ref in refs:
                out.append((ins, self.stage_ref(ref), ref))
        return out

    def leaves(self) -> list[Stage]:
        """Stages nothing else uses (not a FROM parent, not a COPY --from source): each is a build target."""
        used: set[int] = set()
        for st in self.stages:
            if st.parent is not None:
                used.add(st.parent)
            for _ins, src, _ref in self.copy_sources(st):
                if src is not None:
                    used.add(src.index)
        return [st for st in self.stages if st.index not in used]

    def ignored(self, ins: Instruction, rule: str) -> bool:
        ids = self.pragmas.get(ins.index, frozenset())
        return rule in self.file_ignores or "all" in self.file_ignores or rule in ids or "all" in ids


# --- word expansion (BuildKit's shell lexer, the part Dockerfiles use) ------------------------------------

def expand(word: str, scope: Mapping[str, Var] | Mapping[str, str | None], keep_unknown: bool = True) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-x}``, ``${VAR:+x}``, ``${VAR-x}``, ``${VAR+x}`` and remove quotes.

    A variable that is unknown (not in scope, or an ARG without a value) is kept literally when
    ``keep_unknown`` (so callers can see it is unknown); Docker itself would substitute "".
    """
    out: list[str] = []
    i, n = 0, len(word)
    quote = ""

    def lookup(name: str) -> str | None:
        v = scope.get(name)
        if isinstance(v, Var):
            return v.value
        return v

    while i < n:
        c = word[i]
        if quote != "'" and c == "\\" and i + 1 < n:
            nxt = word[i + 1]
            if quote == '"' and nxt not in '"\\$':
                out.append(c)
            out.append(nxt)
            i += 2
            continue
        if c in "'\"" and (not quote or quote == c):
            quote = "" if quote else c
            i += 1
            continue
        if c == "$" and quote != "'" and i + 1 < n:
            if word[i + 1] == "{":
                end = word.find("}", i + 2)
                if end < 0:
                    out.append(word[i:])
                    break
                body = word[i + 2:end]
                m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])(.*))?$", body, re.S)
                if not m:
                    out.append(word[i:end + 1])
                else:
                    name, op, alt = m.group(1), m.group(2), m.group(3)
                    val = lookup(name)
                    known = name in scope and val is not None
                    if op in (":-", "-"):
                        if known and (val or op == "-"):
                            out.append(val or "")
                        elif known or not keep_unknown:
                            out.append(expand(alt or "", scope, keep_unknown))
                        else:
                            out.append(word[i:end + 1])
                    elif op in (":+", "+"):
                        if known and (val or op == "+"):
                            out.append(expand(alt or "", scope, keep_unknown))
                        elif known or not keep_unknown:
                            pass
                        else:
                            out.append(word[i:end + 1])
                    elif known:
                        out.append(val or "")
                    elif keep_unknown:
                        out.append(word[i:end + 1])
                i = end + 1
                continue
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", word[i + 1:])
            if m:
                name = m.group(0)
                val = lookup(name)
                if name in scope and val is not None:
                    out.append(val)
                elif keep_unknown:
                    out.append("$" + name)
                i += 1 + len(name)
                continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_mount(raw: str) -> Mount:
    fields: dict[str, str] = {}
    for part in _csv_split(raw):
        key, _, value = part.partition("=")
        fields[key.strip().lower()] = value.strip().strip('"').strip("'")
    return Mount(
        type=fields.get("type", "bind"),
        target=fields.get("target") or fields.get("dst") or fields.get("destination"),
        id=fields.get("id"),
        source=fields.get("source") or fields.get("src"),
        from_=fields.get("from"),
        env=fields.get("env"),
        raw=raw,
    )


def _csv_split(text: str) -> list[str]:
    out, cur, quote = [], [], ""
    for c in text:
        if c in "\"'" and (not quote or quote == c):
            quote = "" if quote else c
            cur.append(c)
        elif c == "," and not quote:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    if cur:
        out.append("".join(cur))
    return [p for p in out if p.strip()]


def join_path(base: str, path: str) -> str:
    """Resolve ``path`` against directory ``base`` like WORKDIR/COPY do (lexically)."""
    if not path:
        return base
    p = PurePosixPath(path if path.startswith("/") else f"{base.rstrip('/')}/{path}")
    parts: list[str] = []
    for part in p.parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return "/" + "/".join(parts)


# --- reading and checking -------------------------------------------------------------------------------


def _go_parse(text: str, name: str) -> tuple:
    try:
        return _bk.parse_string(text)
    except _bk.GoParseError as exc:
        message = str(exc)
        raise DockerfileParseError(name, _locate_error(text, message), message) from None


def _locate_error(text: str, message: str) -> int | None:
    """The parser's errors carry no line number: a line where a prefix of the file starts failing the same way.

    Bisection over prefixes (about log2(lines) parses, not one per line): it keeps a prefix that parses
    (or fails otherwise) below and one that fails with ``message`` above, and returns the boundary."""
    lines = text.splitlines(keepends=True)

    def fails(k: int) -> bool:
        try:
            _bk.parse_string("".join(lines[:k]))
        except _bk.GoParseError as exc:
            return str(exc) == message
        return False

    lo, hi = 0, len(lines)  # fails(lo) is False (the empty prefix), fails(hi) is the whole file
    if not lines or not fails(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(mid):
            hi = mid
        else:
            lo = mid
    return hi


def parse_text(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse and model a Dockerfile; raises :class:`DockerfileParseError` (exit 2) naming the line."""
    commands = _go_parse(text, path)
    raw: list[Instruction] = []
    for i, c in enumerate(commands):
        keyword = c.cmd.upper()
        flags, args, json_, heredocs, onbuild = tuple(c.flags), tuple(c.value), bool(c.json), c.heredocs, False
        original = c.original
        if keyword == "ONBUILD":
            sub = (c.sub_cmd or "").upper()
            if not sub or sub not in KNOWN_INSTRUCTIONS:
                what = f"unknown instruction: {sub}" if sub else "ONBUILD requires at least one argument"
                raise DockerfileParseError(path, c.start_line, what)
            if sub in ("ONBUILD", "FROM", "MAINTAINER"):
                raise DockerfileParseError(path, c.start_line, f"{sub} isn't allowed as an ONBUILD trigger")
            inner = re.sub(r"^\s*onbuild\s+", "", original, flags=re.I)
            try:
                sub_cmds = _bk.parse_string(inner + ("\n" if not inner.endswith("\n") else ""))
            except _bk.GoParseError as exc:
                raise DockerfileParseError(path, c.start_line, str(exc)) from None
            if sub_cmds:
                s0 = sub_cmds[0]
                flags, args, json_, heredocs = tuple(s0.flags), tuple(s0.value), bool(s0.json), s0.heredocs
            keyword, onbuild = sub, True
        elif keyword not in KNOWN_INSTRUCTIONS:
            raise DockerfileParseError(path, c.start_line, f"unknown instruction: {c.cmd}")
        _check_arguments(path, c.start_line, keyword, args, heredocs)
        raw.append(Instruction(
            index=i, keyword=keyword, line=c.start_line, end_line=c.end_line, original=original,
            flags=flags, args=args, json=json_,
            heredocs=tuple(Heredoc(h.name, h.content, h.file_descriptor) for h in heredocs), onbuild=onbuild,
        ))
    return _model(text, path, raw)


def parse_file(path: str | Path) -> Dockerfile:
    return parse_text(read_text(path), str(path))


def _check_arguments(path: str, line: int, kw: str, args: tuple[str, ...], heredocs) -> None:
    def fail(msg: str) -> None:
        raise DockerfileParseError(path, line, msg)

    if kw == "FROM":
        if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
            fail("FROM requires either one or three arguments (FROM image [AS name])")
    elif kw in ("COPY", "ADD"):
        if len(args) < 2:
            fail(f"{kw} requires at least two arguments, but only {len(args)} provided; destination could not be determined")
    elif kw in ("ARG",) and not args:
        fail("ARG requires at least one argument")
    elif kw in ("ENV", "LABEL") and (not args or len(args) % 2):
        fail(f"{kw} requires at least one argument")
    elif kw in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER") and not args:
        fail(f"{kw} requires exactly one argument")
    elif kw in ("RUN",) and not args and not heredocs:
        fail("RUN requires at least one argument")


def _model(text: str, path: str, raw: list[Instruction]) -> Dockerfile:
    meta: dict[str, Var] = {}
    stages: list[dict] = []
    out: list[Instruction] = []
    escape = "\\"
    m = re.match(r"(?:\s*#[^\n]*\n)*?\s*#\s*escape\s*=\s*(\S)", text)
    if m:
        escape = m.group(1)

    cur: dict | None = None
    for ins in raw:
        if ins.keyword == "FROM" and not ins.onbuild:
            image = expand(ins.args[0], meta)
            name = ins.args[2] if len(ins.args) == 3 else None
            parent = None
            for st in stages:
                if st["name"] and st["name"].lower() == image.lower():
                    parent = st["index"]
            env: dict[str, Var] = {}
            workdir, user, shell = "/", "root", ("/bin/sh", "-c")
            if parent is not None:
                p = stages[parent]
                env = {k: v for k, v in p["scope"].items() if v.kind == "env"}
                workdir, user, shell = p["workdir"], p["user"], p["shell"]
            platform = ins.flag("platform")
            cur = {
                "index": len(stages), "name": name, "base": image, "line": ins.line, "parent": parent,
                "platform": expand(platform, meta) if platform else None, "scope": env, "workdir": workdir,
                "user": user, "shell": shell, "instructions": [],
            }
            stages.append(cur)
            fixed = _with(ins, stage=cur["index"], scope=dict(meta), workdir=workdir, user=user, shell=shell)
            out.append(fixed)
            cur["instructions"].append(fixed)
            continue
        if cur is None:
            if ins.keyword != "ARG" or ins.onbuild:
                raise DockerfileParseError(path, ins.line, "no build stage in current context (the first instruction must be FROM, or ARG before FROM)")
            for item in ins.args:
                name, eq, value = item.partition("=")
                meta[name] = Var(name, expand(value, meta) if eq else None, "meta", ins.line, -1, value if eq else None)
            out.append(_with(ins, stage=-1, scope=dict(meta)))
            continue
        scope: dict[str, Var] = cur["scope"]
        if ins.onbuild:
            # ONBUILD triggers run in the child build: they see the ONBUILD ARG/ENV declared before them
            ob: dict[str, Var] = cur.setdefault("onbuild_scope", {})
            fixed = _with(ins, stage=cur["index"], scope={**scope, **ob}, workdir=cur["workdir"], user=cur["user"],
                          shell=cur["shell"])
            out.append(fixed)
            cur["instructions"].append(fixed)
            if ins.keyword == "ARG":
                for item in ins.args:
                    name, eq, value = item.partition("=")
                    ob[name] = Var(name, expand(value, {**scope, **ob}) if eq else None, "arg", ins.line,
                                   cur["index"], value if eq else None)
            elif ins.keyword == "ENV":
                for k, v in zip(ins.args[0::2], ins.args[1::2], strict=False):
                    ob[k] = Var(k, expand(v, {**scope, **ob}), "env", ins.line, cur["index"], v)
            continue
        fixed = _with(ins, stage=cur["index"], scope=dict(scope), workdir=cur["workdir"], user=cur["user"],
                      shell=cur["shell"])
        out.append(fixed)
        cur["instructions"].append(fixed)
        if ins.keyword == "ARG":
            for item in ins.args:
                name, eq, value = item.partition("=")
                if eq:
                    var = Var(name, expand(value, scope), "arg", ins.line, cur["index"], value)
                elif name in meta:
                    var = Var(name, meta[name].value, "arg", ins.line, cur["index"], meta[name].raw)
                else:
                    var = Var(name, None, "arg", ins.line, cur["index"], None)
                if not (name in scope and scope[name].kind == "env"):  # ENV wins over ARG
                    scope[name] = var
        elif ins.keyword == "ENV":
            pairs = list(zip(ins.args[0::2], ins.args[1::2], strict=False))
            new = {k: Var(k, expand(v, scope), "env", ins.line, cur["index"], v) for k, v in pairs}
            scope.update(new)
        elif ins.keyword == "WORKDIR":
            cur["workdir"] = join_path(cur["workdir"], expand(ins.args[0], scope))
        elif ins.keyword == "USER":
            cur["user"] = expand(ins.args[0], scope).split(":", 1)[0]
        elif ins.keyword == "SHELL" and ins.json:
            cur["shell"] = tuple(ins.args)

    if not stages:
        raise DockerfileParseError(path, None, "no build stage: the Dockerfile has no FROM")
    stage_objs = tuple(
        Stage(s["index"], s["name"], s["base"], s["line"], s["parent"], s["platform"], tuple(s["instructions"]))
        for s in stages
    )
    pragmas, file_ignores = _pragmas(text, out)
    return Dockerfile(path, text, tuple(out), stage_objs, tuple(meta.values()), escape, pragmas, file_ignores)


def _with(ins: Instruction, **kw) -> Instruction:
    from dataclasses import replace

    return replace(ins, **kw)


def _pragmas(text: str, instructions: list[Instruction]) -> tuple[dict[int, frozenset[str]], frozenset[str]]:
    per: dict[int, set[str]] = {}
    file_wide: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        m = _PRAGMA.match(line)
        if not m:
            continue
        ids = {p.strip().lower() for p in (m.group(2) or "all").replace("*", "all").split(",") if p.strip()}
        if m.group(1).lower() == "ignore-file":
            file_wide |= ids
            continue
        target = next((i for i in instructions if i.line <= n <= i.end_line), None)
        if target is None:
            target = next((i for i in instructions if i.line > n), None)
        if target is not None:
            per.setdefault(target.index, set()).update(ids)
    return {k: frozenset(v) for k, v in per.items()}, frozenset(file_wide)
