"""The lint rules: Dockerfile mistakes that cost image size or leak secrets.

Every rule has a fixed id, a default severity, a one-line title, a rationale and a concrete fix (the same
text is in docs/lint.md and in the SARIF rule metadata). ``lint(df, options)`` returns findings in file
order; ``bilge.dockerfile.cost`` attaches measured bytes when the built image is given.

Which stage is shipped matters: the target stage (the last one, or ``--target``) and the stages it is
built FROM end up in the image, with their history and config. Other stages only lend files through
``COPY --from`` (files, not history). Size rules look only at what is shipped; secret rules look at
every stage, at a lower severity outside the shipped chain (a builder stage still leaks when it is pushed,
built with ``--target``, or its cache is exported).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bilge.dockerfile import secretnames as sn
from bilge.dockerfile.dockerignore import DockerIgnore, walk_context
from bilge.dockerfile.keyfiles import not_a_secret
from bilge.dockerfile.parse import Dockerfile, Instruction, Stage, Var, join_path
from bilge.dockerfile.purge import auto_purged
from bilge.dockerfile.runs import PathOp, PkgOp, RunFacts, analyze_run, glob_prefix, strip_glob_tail, under

SEVERITIES = ("critical", "high", "medium", "low", "info")
_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # info=0 ... critical=4


def severity_rank(sev: str) -> int:
    return _RANK.get(sev.lower(), 2)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title: str
    rationale: str
    fix: str
    tags: tuple[str, ...] = ()


RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("secret-arg", "high",
         "A secret passed as ARG or ENV is recorded in the image history or config",
         "Docker records the value of every build argument in the history entry of each RUN that follows the "
         "ARG (`docker history` shows `|1 TOKEN=...`), and ENV values are stored in the image config "
         "(`docker inspect`). Anyone who can pull the image, or the stage, can read them. High when the "
         "stage is shipped; medium in a builder stage, which still leaks when it is pushed, built with "
         "--target, or its build cache is exported.",
         "Pass the secret as a BuildKit secret: `RUN --mount=type=secret,id=token,env=TOKEN ...` (or "
         "`cat /run/secrets/token`) and build with `docker build --secret id=token,env=TOKEN`; remove the ARG/ENV.",
         ("security", "secrets")),
    Rule("secret-copy", "high",
         "A credential file is copied into a layer",
         "COPY/ADD of .npmrc, .netrc, SSH keys, .env, *.pem, cloud credentials... stores the file in a layer. "
         "Deleting it in a later RUN does not remove it from the layer that added it. `COPY . .` copies them too "
         "unless .dockerignore excludes them.",
         "Mount it only for the RUN that needs it: `RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci` "
         "(or type=ssh for git over SSH), and add the file to .dockerignore.",
         ("security", "secrets")),
    Rule("secret-in-layer", "high",
         "A RUN writes a secret into a file that stays in the layer",
         "A RUN that writes a token into ~/.npmrc, ~/.gitconfig, .bundle/config ... and does not delete it in the "
         "same RUN commits the token into the layer's files, where anyone with the image (or stage) can read it.",
         "Use `RUN --mount=type=secret,...` so the file exists only during the RUN, or write and delete it in "
         "the same RUN (the token still appears in history if it came from an ARG: use a secret mount).",
         ("security", "secrets")),
    Rule("secret-literal", "high",
         "A literal credential is written in the Dockerfile",
         "A token or a URL with a password written into a RUN, LABEL, ADD URL or heredoc is stored in the image "
         "history or files, and in your source repository.",
         "Revoke the credential, remove it from the Dockerfile and pass it with `--secret`.",
         ("security", "secrets")),
    Rule("cleanup-later-layer", "medium",
         "A RUN deletes files an earlier layer created: nothing is freed",
         "Each instruction commits a layer. Deleting files (rm, apt-get purge, apk del, yarn cache clean ...) in a "
         "later RUN only hides them; their bytes stay in the layer that created them and in every pull.",
         "Do the cleanup in the same RUN that creates the files (`apt-get install ... && ... && apt-get purge ... "
         "&& rm -rf ...`), keep them out of the context with .dockerignore, or build in a separate stage and copy "
         "only the results.",
         ("size",)),
    Rule("cache-not-cleaned", "low",
         "A package manager leaves its cache in the layer",
         "apt lists, apk indexes, pip/npm/yarn/gem/go/maven caches are written by the same RUN that installs and "
         "are useless at run time; left there, they are shipped with every pull.",
         "Clean in the same RUN (`rm -rf /var/lib/apt/lists/*`, `apk add --no-cache`, `pip install "
         "--no-cache-dir`, `npm cache clean --force`, `yarn cache clean`), or use a BuildKit cache mount "
         "(`RUN --mount=type=cache,target=/root/.cache/pip ...`).",
         ("size",)),
    Rule("toolchain-in-final-stage", "medium",
         "The shipped stage installs compilers, headers or git",
         "build-essential/build-base, gcc, *-dev headers, git, JDKs and build tools are needed to build, not to "
         "run; in the shipped stage they are often hundreds of MB.",
         "Install them in a builder stage and `COPY --from=builder` only the build outputs; install only runtime "
         "libraries (libpq5, not libpq-dev) in the final stage.",
         ("size",)),
    Rule("broad-copy-from", "medium",
         "COPY --from copies a whole system directory",
         "Copying /usr/lib, /usr/local, /lib or / from another stage brings everything that stage installed "
         "(compilers' libraries, headers, caches), and files the final base image already has are stored "
         "again.",
         "Copy only the files the program needs: `bilge deps IMAGE --entrypoint --format dockerfile --from STAGE` "
         "(or `--binary PATH`) prints the COPY lines for the shared libraries it loads; use those (or install the "
         "runtime packages) instead of the directory.",
         ("size",)),
    Rule("single-stage-build", "medium",
         "A single-stage build ships its toolchain",
         "With one stage, whatever the build needs (compilers, -dev packages, git, SDK images) is in the image "
         "you ship.",
         "Split into a build stage (toolchain, compile) and a runtime stage on a slim base that copies only "
         "the artefacts: `FROM ... AS build` ... `FROM ...-slim` + `COPY --from=build /app /app`.",
         ("size",)),
    Rule("no-dockerignore", "low",
         "The whole build context is copied without a .dockerignore that excludes .git, node_modules, log, tmp",
         "`COPY . .` copies everything the context sends: .git history, local node_modules, logs, temporary "
         "files, and local secrets such as .env. They cost bytes and can leak.",
         "Add a .dockerignore beside the Dockerfile (or at the context root) with at least `.git`, "
         "`**/node_modules`, `log`, `tmp`, `.env*`.",
         ("size", "security")),
    Rule("recursive-chown", "low",
         "A RUN chown/chmod -R rewrites files an earlier layer added: they are stored twice",
         "Changing the owner or mode of a file in a later layer copies the whole file into the new layer.",
         "Set ownership while copying: `COPY --chown=app:app` / `COPY --chmod=755`, or run chown in the same "
         "RUN that creates the files.",
         ("size",)),
)}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    line: int
    message: str
    end_line: int | None = None
    stage: str | None = None
    instruction: str = ""
    fix: str = ""
    bytes: int | None = None
    related: tuple[int, ...] = ()  # other lines involved (the creator of the files, the ARG ...)
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule, "severity": self.severity, "line": self.line, "end_line": self.end_line or self.line,
            "stage": self.stage, "instruction": self.instruction, "message": self.message, "bytes": self.bytes,
            "fix": self.fix,
        }
        if self.related:
            out["related_lines"] = list(self.related)
        if self.details:
            out["details"] = dict(self.details)
        return out


@dataclass(frozen=True)
class LintOptions:
    target: str | None = None
    context: str | None = None  # the build context directory; None: not available
    dockerignore: DockerIgnore | None = None
    secret_names: tuple[str, ...] = ()
    allow_names: tuple[str, ...] = ()
    show_secrets: bool = False


# --- the analysis shared by the rules ---------------------------------------------------------------------

class Analysis:
    def __init__(self, df: Dockerfile, opts: LintOptions) -> None:
        self.df = df
        self.opts = opts
        self.target = df.target(opts.target)
        self.chain = df.chain(self.target)  # nearest first
        self.shipped = {s.index for s in self.chain}
        self.content = self._content_shipped()
        self._facts: dict[int, RunFacts] = {}
        self.memo: dict[str, Any] = {}  # results several rules share, computed once
        self.leaves = [s for s in df.leaves() if s.index != self.target.index]

    def facts(self, ins: Instruction) -> RunFacts:
        if ins.index not in self._facts:
            self._facts[ins.index] = analyze_run(ins)
        return self._facts[ins.index]

    def _content_shipped(self) -> set[int]:
        out = set(self.shipped)
        changed = True
        while changed:
            changed = False
            for si in list(out):
                for ins, src, _ref in self.df.copy_sources(self.df.stages[si]):
                    if src is None or src.index in out or ins.keyword not in ("COPY", "ADD"):
                        continue
                    sources = [norm(ins.expand(a)) for a in ins.args[:-1]]
                    if sources and all(s == "/" for s in sources):
                        for c in self.df.chain(src):
                            out.add(c.index)
                        changed = True
        return out

    def shipped_instructions(self) -> list[Instruction]:
        """Instructions of the shipped chain in build order (the root ancestor first)."""
        out: list[Instruction] = []
        for st in reversed(self.chain):
            out += [i for i in st.instructions if not i.onbuild]
        return out

    def stage_of(self, ins: Instruction) -> Stage:
        return self.df.stages[ins.stage]

    def role(self, stage: Stage) -> str:
        """How the stage relates to the shipped image, for messages."""
        if stage.index == self.target.index:
            if self.opts.target:
                return f"target stage {stage.label}"
            return "the final stage" if len(self.df.stages) > 1 else "the only stage"
        if stage.index in self.shipped:
            return f"stage {stage.label}, which the shipped stage is built FROM"
        return f"stage {stage.label}"

    def inheritors(self, stage: Stage) -> list[Stage]:
        """Other leaf stages (alternative --target builds) whose FROM chain includes ``stage``."""
        return [leaf for leaf in self.leaves if stage.index in {s.index for s in self.df.chain(leaf)}]

    def builder_note(self, stage: Stage) -> str:
        inh = [s for s in self.inheritors(stage) if s.index != stage.index]
        note = (f"Stage {stage.label} is not shipped (COPY --from copies files, not history), but the value leaks "
                "when that stage is pushed, built with --target, or its build cache is exported")
        if inh:
            note += "; it is the base of " + ", ".join(s.label for s in inh) + ", which are built as targets"
        elif stage in self.leaves:
            note += f"; nothing else uses stage {stage.label}, so it is probably built with --target"
        return note

    def is_secret_var(self, var: Var, scope: Mapping[str, Var]) -> str | None:
        """Why an ARG/ENV binding holds a secret, or None."""
        reason = sn.secret_name(var.name, self.opts.secret_names, self.opts.allow_names)
        raw = var.raw or ""
        refs = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", raw))
        literal = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", "", raw)
        if var.value is not None and sn.secret_value(var.value):
            return sn.secret_value(var.value)
        secret_refs = [r for r in refs if r in scope and scope[r] is not var and self.is_secret_var(scope[r], {})]
        if secret_refs:
            return "holds " + ", ".join(sorted(secret_refs))
        if reason is None:
            return None
        if var.kind in ("arg", "meta") and var.raw is None:
            return reason  # declared without a default: the value comes from --build-arg
        if refs and not literal.strip(" :@/\"'"):
            return None  # only references to variables that are not secrets
        if sn.harmless_value(var.value, var.name):
            return None
        return reason


def norm(path: str) -> str:
    p = path.strip().strip('"').strip("'")
    if not p:
        return p
    if p in (".", "./"):
        return "."
    if p.startswith("/"):
        return join_path("/", p)
    return p.rstrip("/") or p


# --- the rules --------------------------------------------------------------------------------------------

def lint(df: Dockerfile, opts: LintOptions | None = None) -> list[Finding]:
    opts = opts or LintOptions()
    an = Analysis(df, opts)
    findings: list[Finding] = []
    for fn in (_secret_arg, _secret_env, _secret_copy, _secret_in_layer, _secret_literal, _cleanup_later,
               _cache_not_cleaned, _toolchain, _broad_copy_from, _no_dockerignore, _recursive_chown):
        findings.extend(fn(an))
    out = []
    by_index = {i.line: i for i in df.instructions}
    for f in findings:
        ins = by_index.get(f.line)
        if ins is not None and df.ignored(ins, f.rule):
            continue
        if f.rule in df.file_ignores or "all" in df.file_ignores:
            continue
        out.append(f)
    out.sort(key=lambda f: (f.line, f.rule))
    return out


def _finding(an: Analysis, rule: str, ins: Instruction, message: str, severity: str | None = None,
             related: Iterable[int] = (), details: Mapping[str, Any] | None = None, fix: str | None = None,
             bytes_: int | None = None) -> Finding:
    st = an.df.stages[ins.stage] if ins.stage >= 0 else None
    return Finding(
        rule=rule, severity=severity or RULES[rule].severity, line=ins.line, end_line=ins.end_line,
        stage=(st.name or f"#{st.index}") if st else None, instruction=ins.short(), message=message,
        fix=fix or RULES[rule].fix, related=tuple(sorted(set(related))), details=dict(details or {}),
        bytes=bytes_,
    )


def _runs_after(stage: Stage, ins: Instruction, onbuild: bool = False) -> list[Instruction]:
    return [i for i in stage.instructions if i.keyword == "RUN" and i.line > ins.line and i.onbuild == onbuild]


def _secret_arg(an: Analysis) -> list[Finding]:
    out = []
    for stage in an.df.stages:
        for ins in stage.instructions:
            if ins.keyword != "ARG":
                continue
            hits = []
            for item in ins.args:
                name = item.partition("=")[0]
                var = _arg_binding(an, stage, ins, name)
                reason = an.is_secret_var(var, ins.scope)
                if reason is None:
                    continue
                runs = [r for r in _runs_after(stage, ins, ins.onbuild) if name in r.scope]
                literal = var.raw is not None and var.value is not None and not sn.harmless_value(var.value, name)
                if not runs and not literal:
                    continue
                hits.append((name, var, runs, literal))
            if not hits:
                continue
            shipped = stage.index in an.shipped or ins.onbuild
            names = ", ".join(h[0] for h in hits)
            runs = sorted({r.line for h in hits for r in h[2]})
            naming = sorted({r.line for h in hits for r in h[2] if h[0] in an.facts(r).vars_named})
            silent = [r for r in runs if r not in naming]
            parts = [f"ARG {names} ({an.role(stage)})"]
            if runs:
                how = []
                if naming:
                    how.append(f"{_the_run(naming)}, which use{'s' if len(naming) == 1 else ''} it")
                if silent:
                    have = "has" if len(silent) == 1 else "have"
                    how.append(("and by " if naming else "") + f"{_the_run(silent)}, which {have} it in scope"
                               + ("" if naming else " (read from the environment)"))
                parts.append("is recorded in the image history by " + ", ".join(how)
                             + ": `docker history --no-trunc` prints the value.")
            else:
                parts.append("is declared with a default value.")
            for name, var, _runs, literal in hits:
                if literal and var.value is not None:
                    parts.append(f"The default of {name} ({sn.mask(var.value, an.opts.show_secrets)}) is written in "
                                 "the Dockerfile itself, so it is in your repository too.")
            if ins.onbuild:
                parts.append("As an ONBUILD trigger it runs in every image built FROM this one.")
                sev = "high"
            elif shipped:
                parts.append("Anyone who can pull the image can read it.")
                sev = "high"
            else:
                parts.append(an.builder_note(stage) + ".")
                sev = "medium"
            message = " ".join(parts)
            out.append(_finding(an, "secret-arg", ins, message, sev, related=runs,
                                details={"names": [h[0] for h in hits], "shipped": shipped, "runs": runs}))
    return out


def _arg_binding(an: Analysis, stage: Stage, ins: Instruction, name: str) -> Var:
    for item in ins.args:
        n, eq, value = item.partition("=")
        if n != name:
            continue
        if eq:
            from bilge.dockerfile.parse import expand
            return Var(n, expand(value, ins.scope), "arg", ins.line, stage.index, value)
        meta = {v.name: v for v in an.df.meta_args}
        if n in meta:
            return Var(n, meta[n].value, "arg", ins.line, stage.index, meta[n].raw)
    return Var(name, None, "arg", ins.line, stage.index, None)


def _secret_env(an: Analysis) -> list[Finding]:
    out = []
    for stage in an.df.stages:
        for ins in stage.instructions:
            if ins.keyword != "ENV":
                continue
            scope = dict(ins.scope)
            hits = []
            for k, raw in zip(ins.args[0::2], ins.args[1::2], strict=False):
                from bilge.dockerfile.parse import expand
                var = Var(k, expand(raw, scope), "env", ins.line, stage.index, raw)
                reason = an.is_secret_var(var, scope)
                if reason:
                    hits.append((k, var, reason))
                scope[k] = var
            if not hits:
                continue
            shipped = stage.index in an.shipped or ins.onbuild
            descr = []
            for k, var, _reason in hits:
                refs = [r for r in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", var.raw or "")
                        if r in ins.scope and an.is_secret_var(ins.scope[r], {})]
                if refs:
                    descr.append(f"{k} (from {', '.join(f'{r} at line {ins.scope[r].line}' for r in refs)})")
                elif var.value:
                    descr.append(f"{k}={sn.mask(var.value, an.opts.show_secrets)}")
                else:
                    descr.append(k)
            message = (f"ENV {', '.join(descr)} ({an.role(stage)}) stores the value in the image config: "
                       "`docker inspect` prints it, and every container and every stage built FROM this one gets it.")
            if shipped:
                message += " Anyone who can pull the image can read it."
            else:
                message += " " + an.builder_note(stage) + "."
            out.append(_finding(an, "secret-arg", ins, message, "high" if shipped else "medium",
                                related=[ins.scope[r].line for k, v, _ in hits for r in
                                         re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", v.raw or "") if r in ins.scope],
                                details={"names": [h[0] for h in hits], "shipped": shipped, "env": True}))
    return out


def _the_run(lines: list[int]) -> str:
    return ("the RUN at " if len(set(lines)) == 1 else "the RUNs at ") + _lines(lines)


def _short(text: str, width: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def _lines(lines: list[int]) -> str:
    lines = sorted(set(lines))
    if len(lines) == 1:
        return f"line {lines[0]}"
    return "lines " + ", ".join(str(n) for n in lines[:-1]) + f" and {lines[-1]}"


# --- secret-copy -------------------------------------------------------------------------------------------

_WHOLE_CONTEXT = frozenset({".", "./", "/", "*", "./*"})


def _context_sources(ins: Instruction) -> list[str]:
    if ins.keyword not in ("COPY", "ADD") or ins.flag("from") is not None:
        return []
    srcs = [ins.expand(a) for a in ins.args[:-1]]
    return [s for s in srcs if not s.startswith("<<") and not re.match(r"^[a-z][a-z0-9+.\-]*://", s, re.I)
            and not s.startswith("git@")]


def _dest_of(ins: Instruction) -> str:
    dest = ins.expand(ins.args[-1])
    return join_path(ins.workdir, dest)


def _private_key_file(path: Path) -> bool | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError:
        return None
    return b"PRIVATE KEY" in head


def _credential_hits(an: Analysis, ins: Instruction) -> list[tuple[str, str]]:
    """(context-relative path or pattern, label) of the credential files this COPY/ADD brings in."""
    hits: list[tuple[str, str]] = []
    ctx = Path(an.opts.context) if an.opts.context and not ins.onbuild else None
    ign = an.opts.dockerignore if not ins.onbuild else None
    dest = _dest_of(ins)
    sources = _context_sources(ins)
    for src in sources:
        clean = src.strip("/") if src not in _WHOLE_CONTEXT else "."
        clean = re.sub(r"^\./", "", clean) or "."
        label = sn.credential_file(clean) if clean != "." else None
        dest_file = dest if len(sources) == 1 and not ins.args[-1].endswith("/") else posixpath.join(
            dest, posixpath.basename(clean))
        if label is None and clean != ".":
            label = sn.credential_file(dest_file)
        on_disk = ctx / clean if ctx is not None else None
        if label:
            if ign is not None and not _has_glob(clean) and ign.excluded(clean):
                continue  # the build would fail: the file is not in the context
            if on_disk is not None and on_disk.is_file() and clean.endswith(".pem"):
                if _private_key_file(on_disk) is False:
                    continue  # a certificate, not a key
            if not _has_glob(clean) and not_a_secret(clean, dest_file, on_disk):
                continue  # a public key: by its content when at hand, else by its names (issue 12)
            hits.append((clean, label))
            continue
        if ctx is None or on_disk is None or not on_disk.exists():
            continue
        if on_disk.is_dir() or _has_glob(clean):
            root = clean if not _has_glob(clean) else glob_prefix("/" + clean).lstrip("/") or "."
            for entry in walk_context(ctx, ign, root=root, skip_dirs=frozenset({".git", "node_modules"})):
                if entry.is_dir:
                    continue
                if _has_glob(clean) and not fnmatch.fnmatch(entry.rel, clean) and not fnmatch.fnmatch(
                        entry.rel.split("/")[0], clean):
                    continue
                lab = sn.credential_file(entry.rel)
                if lab is None:
                    continue
                if entry.rel.endswith(".pem") and _private_key_file(ctx / entry.rel) is False:
                    continue
                hits.append((entry.rel, lab))
                if len(hits) >= 50:
                    break
    return hits


def _has_glob(p: str) -> bool:
    return bool(re.search(r"[*?\[]", p))


def _flows_to_shipped(an: Analysis, stage: Stage, path: str) -> Instruction | None:
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


def _secret_copy(an: Analysis) -> list[Finding]:
    out = []
    for stage in an.df.stages:
        for ins in stage.instructions:
            if ins.keyword not in ("COPY", "ADD") or ins.flag("from") is not None:
                continue
            hits = _credential_hits(an, ins)
            if not hits:
                continue
            dest = _dest_of(ins)
            shipped = stage.index in an.content or ins.onbuild
            carried = None if shipped else _flows_to_shipped(an, stage, dest)
            files = ", ".join(f"{p} ({label})" for p, label in hits[:8]) + (
                f" and {len(hits) - 8} more" if len(hits) > 8 else "")
            whole = any(s in _WHOLE_CONTEXT or s.rstrip("/") in (".", "") for s in _context_sources(ins))
            head = (f"{ins.short(40)} copies the whole context, which includes {files}," if whole
                    else f"{ins.short(60)} puts {files}")
            later = _deleted_later(an, stage, ins, dest, hits)
            msg = head + f" into a layer of {an.role(stage)}."
            if later:
                msg += f" The RUN at {_lines(later)} deletes it, but the layer from line {ins.line} keeps it."
            if ins.onbuild:
                msg += " As an ONBUILD trigger this happens in every image built FROM this one."
            if shipped or carried is not None:
                if carried is not None:
                    msg += f" Line {carried.line} copies it into the shipped image."
                msg += " Anyone who can pull the image can read it."
                sev = "high"
            else:
                msg += " " + an.builder_note(stage).replace("the value leaks", "the file leaks") + "."
                sev = "medium"
            fix = RULES["secret-copy"].fix
            if whole:
                fix = ("Add " + ", ".join(sorted({p for p, _ in hits})[:6]) + " to .dockerignore, and mount what the "
                       "build needs with `RUN --mount=type=secret,id=...,target=...`.")
            out.append(_finding(an, "secret-copy", ins, msg, sev, related=later + ([carried.line] if carried else []),
                                details={"files": [p for p, _ in hits], "shipped": shipped or carried is not None},
                                fix=fix))
    return out


def _deleted_later(an: Analysis, stage: Stage, ins: Instruction, dest: str, hits: list[tuple[str, str]]) -> list[int]:
    lines = []
    for r in stage.instructions:
        if r.keyword != "RUN" or r.line <= ins.line or r.onbuild != ins.onbuild:
            continue
        for rm in an.facts(r).removes:
            rp = strip_glob_tail(rm.path)
            for p, _ in hits:
                target = dest if len(_context_sources(ins)) == 1 and p == _context_sources(ins)[0].strip("/") else \
                    posixpath.join(dest, p if p != "." else "")
                if under(target, rp) or under(join_path(dest, posixpath.basename(p)), rp) or (
                        rm.path == target):
                    lines.append(r.line)
    return sorted(set(lines))


# --- secret-in-layer ---------------------------------------------------------------------------------------

def _secret_in_layer(an: Analysis) -> list[Finding]:
    out = []
    for stage in an.df.stages:
        for ins in stage.instructions:
            if ins.keyword != "RUN":
                continue
            facts = an.facts(ins)
            mounts = {m.target for m in facts.mounts if m.target}
            hits = []
            for w in facts.writes:
                secret_vars = sorted(n for n in w.names if n in ins.scope and an.is_secret_var(ins.scope[n], ins.scope))
                if not secret_vars and not w.reads_secret:
                    continue
                if any(under(w.path, m) for m in mounts):
                    continue
                if any(under(w.path, strip_glob_tail(r.path)) for r in facts.removes):
                    continue
                what = ", ".join(secret_vars) if secret_vars else "a --mount=type=secret file"
                hits.append((w, what))
            if not hits:
                continue
            seen = {}
            for w, what in hits:
                seen.setdefault(w.path, (w, what))
            shipped = stage.index in an.content or ins.onbuild
            desc = "; ".join(f"`{_short(w.text, 56)}` writes {what} into {path}" for path, (w, what) in seen.items())
            msg = (f"RUN ({an.role(stage)}): {desc}, and the same RUN does not delete it, so the secret is stored in "
                   "the layer's files.")
            if ins.onbuild:
                msg += " As an ONBUILD trigger this happens in every image built FROM this one."
            if shipped:
                msg += " Anyone who can pull the image can read it."
            else:
                carried = [_flows_to_shipped(an, stage, p) for p in seen]
                carried_lines = [c.line for c in carried if c is not None]
                if carried_lines:
                    msg += f" Line {carried_lines[0]} copies it into the shipped image."
                    shipped = True
                else:
                    msg += " " + an.builder_note(stage) + "."
            out.append(_finding(an, "secret-in-layer", ins, msg, "high" if shipped else "medium",
                                details={"files": list(seen), "shipped": shipped}))
    return out


# --- secret-literal ----------------------------------------------------------------------------------------

def _secret_literal(an: Analysis) -> list[Finding]:
    out = []
    for stage in an.df.stages:
        for ins in stage.instructions:
            texts: list[str] = []
            if ins.keyword in ("RUN", "LABEL", "CMD", "ENTRYPOINT", "HEALTHCHECK", "USER", "WORKDIR", "VOLUME"):
                texts.append(" ".join(ins.args))
                texts += [h.content for h in ins.heredocs]
            elif ins.keyword in ("COPY", "ADD"):
                texts += [a for a in ins.args if "://" in a]
                texts += [h.content for h in ins.heredocs]
            elif ins.keyword == "FROM":
                texts.append(" ".join(ins.args))
            if not texts:
                continue
            found: list[tuple[str, str]] = []
            for t in texts:
                found += sn.literal_credentials(t)
            if not found:
                continue
            shipped = stage.index in an.content or ins.onbuild
            kinds = sorted({k for k, _ in found})
            shown = ", ".join(sorted({sn.mask(v, an.opts.show_secrets) for _, v in found}))
            where = {"RUN": "the image history (`docker history`)", "LABEL": "the image config",
                     "CMD": "the image config", "ENTRYPOINT": "the image config", "HEALTHCHECK": "the image config",
                     "COPY": "a file in the layer", "ADD": "the image history"}.get(ins.keyword, "the image")
            msg = (f"{ins.keyword} in {an.role(stage)} contains a literal {', '.join(kinds)} ({shown}); it is stored "
                   f"in {where} and in your repository.")
            if not shipped:
                msg += " " + an.builder_note(stage) + "."
            out.append(_finding(an, "secret-literal", ins, msg, "high" if shipped else "medium",
                                details={"kinds": kinds, "shipped": shipped}))
    return out


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
        dest = _dest_of(ins)
        srcs = [ins.expand(a) for a in ins.args[:-1] if not a.startswith("<<")]
        into_dir = len(srcs) > 1 or ins.args[-1].endswith("/") or ins.args[-1] in (".", "./")
        ctx = Path(an.opts.context) if an.opts.context and not ins.flag("from") else None
        for src in srcs:
            n = norm(src)
            if n in (".", "/") or _has_glob(n):
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
    if _has_glob(cp):
        cp = glob_prefix(cp)
    if under(cp, rbase) and (not _has_glob(r) or fnmatch.fnmatch(cp, r) or rbase != r):
        return True  # the removal covers what the creator wrote
    if under(rbase, cp) and not _has_glob(rbase):
        return c.partial or c.what in ("copied files", "node_modules", "gems", "extracted files", "git clone") or \
            rbase == cp
    if _has_glob(r) and fnmatch.fnmatch(cp, r):
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
        cp = glob_prefix(c.path) if _has_glob(c.path) else c.path
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
        if _has_glob(r):
            literal = re.split(r"[*?\[]", r, maxsplit=1)[0]
            directory = literal.rsplit("/", 1)[0]
            if not directory:
                return self.creators
            ks |= set(self.under.get(directory, ()))
        if not _has_glob(rbase):
            for prefix in _slash_prefixes(rbase):
                ks |= set(self.exact.get(prefix, ()))
        return [self.creators[k] for k in sorted(ks)]


def _cleanup_matches(an: Analysis) -> list[tuple[Instruction, list[tuple[str, Instruction, str]]]]:
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
                    matches.append((_CACHE_NAMES.get(kind, kind), e, kind))
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


def _cleanup_later(an: Analysis) -> list[Finding]:
    out = []
    for ins, matches in _cleanup_matches(an):
        by_what: dict[str, list[Instruction]] = {}
        for what, creator, _how in matches:
            by_what.setdefault(what, [])
            if creator not in by_what[what]:
                by_what[what].append(creator)
        parts = []
        for what, creators in by_what.items():
            cl = sorted({c.line for c in creators})
            short = creators[0].short(48)
            parts.append(f"{what} (written by line {cl[0]}: `{short}`" + (
                f", and {_lines(cl[1:])}" if len(cl) > 1 else "") + ")")
        related = sorted({c.line for _, c, _ in matches})
        msg = (f"{ins.short(60)} removes " + "; ".join(parts) + f" in a later layer: the bytes stay in the layer"
               f"{'s' if len(related) > 1 else ''} at {_lines(related)}, so the image is not smaller.")
        fix = (f"Move the cleanup into the instruction that creates the files (line {related[0]}), keep them out of "
               "the build context with .dockerignore, or do the work in a build stage and copy only the results.")
        out.append(_finding(an, "cleanup-later-layer", ins, msg, related=related, fix=fix,
                            details={"removes": list(by_what), "created_by": related}))
    return out


_CACHE_NAMES = {
    "apt-lists": "apt package lists (/var/lib/apt/lists)", "apk-cache": "apk index cache (/var/cache/apk)",
    "yum-cache": "yum cache (/var/cache/yum)", "dnf-cache": "dnf cache (/var/cache/dnf)",
    "zypper-cache": "zypper cache", "pip-cache": "pip cache (~/.cache/pip)", "uv-cache": "uv cache (~/.cache/uv)",
    "poetry-cache": "poetry cache", "npm-cache": "npm cache (~/.npm)", "yarn-cache": "yarn cache",
    "pnpm-store": "pnpm store", "gem-cache": "gem cache (.gem files)", "go-cache": "Go module and build caches",
    "cargo-cache": "cargo registry", "maven-repo": "Maven repository (~/.m2)", "gradle-cache": "Gradle cache (~/.gradle)",
    "conda-pkgs": "conda package cache", "apt-archives": "apt archives",
}
_CACHE_FIX = {
    "apt-lists": "end the RUN with `&& rm -rf /var/lib/apt/lists/*` (or `RUN --mount=type=cache,target=/var/lib/apt,sharing=locked`)",
    "apk-cache": "use `apk add --no-cache` (and drop `apk update`)",
    "yum-cache": "end the RUN with `&& yum clean all && rm -rf /var/cache/yum`",
    "dnf-cache": "end the RUN with `&& dnf clean all`",
    "zypper-cache": "end the RUN with `&& zypper clean -a`",
    "pip-cache": "use `pip install --no-cache-dir` (or `ENV PIP_NO_CACHE_DIR=1`, or `--mount=type=cache,target=/root/.cache/pip`)",
    "uv-cache": "use `uv ... --no-cache` (or `ENV UV_NO_CACHE=1`, or a cache mount)",
    "poetry-cache": "use `poetry install --no-cache` or a cache mount",
    "npm-cache": "end the RUN with `&& npm cache clean --force` (or `--mount=type=cache,target=/root/.npm`)",
    "yarn-cache": "end the RUN with `&& yarn cache clean` (or `--mount=type=cache,target=/usr/local/share/.cache/yarn`)",
    "pnpm-store": "end the RUN with `&& pnpm store prune` or use a cache mount",
    "gem-cache": "end the RUN with `&& rm -rf /usr/local/bundle/cache/*.gem` (or under $BUNDLE_PATH)",
    "go-cache": "use `--mount=type=cache,target=/go/pkg/mod` and `--mount=type=cache,target=/root/.cache/go-build` (or `go clean -modcache -cache`)",
    "cargo-cache": "use cache mounts for the cargo registry, or build in a separate stage",
    "maven-repo": "use `--mount=type=cache,target=/root/.m2` or build in a separate stage",
    "gradle-cache": "use `--mount=type=cache,target=/root/.gradle` or build in a separate stage",
    "conda-pkgs": "end the RUN with `&& conda clean -afy`",
}


def _cache_not_cleaned(an: Analysis) -> list[Finding]:
    out = []
    later_cleaned: dict[tuple[int, str], list[int]] = {}
    for later, matches in _cleanup_matches(an):
        for _what, creator, how in matches:
            later_cleaned.setdefault((creator.index, how), []).append(later.line)
    stages = [an.df.stages[i] for i in sorted(an.content)]
    for stage in stages:
        for ins in stage.instructions:
            if ins.keyword != "RUN":
                continue
            facts = an.facts(ins)
            # a cache a later RUN removes gets both findings: this one (the fix goes here) and
            # cleanup-later-layer at the later RUN (issue 12)
            left = [c for c in facts.caches if c.cleaned is None]
            if not left:
                continue
            names = [_CACHE_NAMES.get(c.kind, c.kind) for c in left]
            msg = f"{ins.short(60)} leaves the " + ", ".join(names) + f" in the layer of {an.role(stage)}"
            if ins.onbuild:
                msg += " (ONBUILD: in every image built FROM this one)"
            removed_at = sorted({n for c in left for n in later_cleaned.get((ins.index, c.kind), [])})
            if removed_at:
                msg += f"; the RUN at {_lines(removed_at)} removes it, which frees nothing"
            msg += "."
            fix = "; ".join(_CACHE_FIX.get(c.kind, RULES["cache-not-cleaned"].fix) for c in left)
            fix = fix[0].upper() + fix[1:] + "."
            out.append(_finding(an, "cache-not-cleaned", ins, msg, fix=fix,
                                details={"caches": [c.kind for c in left],
                                         "paths": [p for c in left for p in c.paths]}))
    return out


_TOOLCHAIN = frozenset({
    "build-essential", "build-base", "alpine-sdk", "gcc", "g++", "cpp", "c++", "clang", "llvm", "make", "cmake",
    "autoconf", "automake", "libtool", "pkg-config", "pkgconf", "pkgconfig", "git", "bison", "flex", "nasm", "yasm",
    "ninja-build", "meson", "gfortran", "golang", "golang-go", "go", "rustc", "cargo", "rust", "maven", "gradle",
    "default-jdk", "default-jdk-headless", "linux-headers", "development tools", "gcc-c++", "kernel-headers",
    "kernel-devel", "ccache", "scons",
})
_TOOLCHAIN_RX = re.compile(r"^(gcc|g\+\+|clang|llvm|cpp)-\d+(\.\d+)?$|^openjdk-?\d+-jdk(-headless)?$|^openjdk\d+(-jdk)?$"
                           r"|^java-[\d.]+-openjdk-devel$|.+-dev$|.+-devel$")
_TOOLCHAIN_IMAGES = re.compile(r"(^|/)(golang|rust|gcc|maven|gradle|buildpack-deps|sdk)(:|$)")
_JDK_IMAGES = re.compile(r"(^|/)(openjdk|eclipse-temurin|amazoncorretto|sapmachine|azul/zulu-openjdk)(:|$)")


def toolchain_packages(names: Iterable[str]) -> list[str]:
    return [n for n in names if n.lower() in _TOOLCHAIN or _TOOLCHAIN_RX.match(n.lower())]


def toolchain_image(image: str) -> str | None:
    img = image.lower()
    if _TOOLCHAIN_IMAGES.search(img.split("@")[0]):
        return "a toolchain image"
    if _JDK_IMAGES.search(img) and "jre" not in img:
        return "a JDK image"
    return None


def _installed_toolchain(an: Analysis, ins: Instruction, seq: list[Instruction]) -> tuple[list[str], bool]:
    """Toolchain packages a RUN installs and does not remove itself; and whether a later RUN removes them."""
    facts = an.facts(ins)
    installed: list[str] = []
    for p in facts.installs:
        installed += toolchain_packages(p.names)
        if p.virtual and toolchain_packages(p.names):
            installed.append(p.virtual)
    removed = {n for p in facts.removals for n in p.names}
    purged, still_manual = auto_purged(facts.commands)
    if purged:  # apt-mark auto + purge --auto-remove in this RUN: apt's installs are gone (issue 12)
        removed |= {n for p in facts.installs if p.manager == "apt" for n in p.names if n not in still_manual}
    virtual_removed = {p.virtual for p in facts.installs if p.virtual and p.virtual in removed}
    tools = [n for n in dict.fromkeys(installed) if n not in removed and n not in virtual_removed]
    if virtual_removed:
        tools = [n for n in tools if not any(n in p.names for p in facts.installs if p.virtual in virtual_removed)]
    # the last position in ``seq`` at which a RUN removes each package name (computed once)
    last_removed = an.memo.get("last_removed")
    if last_removed is None:
        last_removed = an.memo["last_removed"] = {}
        an.memo["positions"] = {i.index: pos for pos, i in enumerate(seq)}
        for pos, nxt in enumerate(seq):
            if nxt.keyword == "RUN":
                for p in an.facts(nxt).removals:
                    for n in p.names:
                        last_removed[n] = pos
    pos = an.memo["positions"].get(ins.index)
    later = pos is not None and any(last_removed.get(t, -1) > pos for t in tools)
    return [t for t in tools if not t.startswith(".")], later


def _toolchain(an: Analysis) -> list[Finding]:
    out = []
    single = len(an.df.stages) == 1
    rule = "single-stage-build" if single else "toolchain-in-final-stage"
    seq = an.shipped_instructions()
    for si in sorted(an.content):
        stage = an.df.stages[si]
        if stage.parent is None:
            kind = toolchain_image(stage.base)
            if kind:
                ins = next(i for i in stage.instructions if i.keyword == "FROM")
                if single:
                    msg = (f"The only stage is built FROM {stage.base}, {kind}: the compiler and SDK ship with the "
                           "application.")
                else:
                    msg = (f"{an.role(stage)[0].upper()}{an.role(stage)[1:]} is built FROM {stage.base}, {kind}, so "
                           "the SDK ships with the application.")
                out.append(_finding(an, rule, ins, msg, details={"base": stage.base}))
        for ins in stage.instructions:
            if ins.keyword != "RUN":
                continue
            tools, later = _installed_toolchain(an, ins, seq)
            if not tools:
                continue
            shown = ", ".join(tools[:10]) + (f" and {len(tools) - 10} more" if len(tools) > 10 else "")
            if single:
                msg = (f"{ins.short(50)} installs {shown} in the only stage: the toolchain ships with the image"
                       + ("; removing it in a later RUN does not free the bytes" if later else "")
                       + "; a multi-stage build would leave it behind.")
            else:
                msg = (f"{ins.short(50)} installs {shown} in {an.role(stage)}: build tools ship with the image"
                       + ("; a later RUN removes them, which frees nothing" if later else "") + ".")
            if ins.onbuild:
                msg += " (ONBUILD)"
            out.append(_finding(an, rule, ins, msg, details={"packages": tools}))
    return out


_BROAD = (
    "/", "/usr", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/local", "/usr/local/lib", "/usr/share", "/lib",
    "/lib64", "/lib32", "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/etc", "/var", "/usr/include", "/opt",
)
_TRIPLET = re.compile(r"^/(usr/)?lib/[a-z0-9_]+-linux-[a-z0-9_]+$")


def broad_dir(path: str) -> bool:
    return path in _BROAD or bool(_TRIPLET.match(path))


def _broad_copy_from(an: Analysis) -> list[Finding]:
    out = []
    for si in sorted(an.content):
        stage = an.df.stages[si]
        for ins in stage.instructions:
            if ins.keyword not in ("COPY", "ADD") or not ins.flag("from"):
                continue
            ref = ins.expand(ins.flag("from") or "")
            src_stage = an.df.stage_ref(ref)
            srcs = [norm(ins.expand(a)) for a in ins.args[:-1]]
            broad = [s for s in srcs if s.startswith("/") and broad_dir(s)]
            if not broad:
                continue
            origin = f"stage {src_stage.label}" if src_stage else f"image {ref}"
            dirs = ", ".join(broad)
            msg = (f"COPY --from={ref} copies all of {dirs} from {origin} into {an.role(stage)}: every file that stage "
                   "installed there comes along, not just what the program loads.")
            if src_stage is not None:
                src_root = an.df.chain(src_stage)[-1].base
                dst_root = an.df.chain(stage)[-1].base
                if src_root == dst_root and src_root != "scratch":
                    msg = msg[:-1] + (f"; both stages start from {src_root}, so the files the base image already has "
                                  "are stored a second time.")
            fix = ("Copy only the files needed: build the image, then `bilge deps IMAGE --entrypoint --format dockerfile "
                   f"--from {ref}` (or `--binary /path/to/program`) prints COPY lines for the shared libraries it loads; "
                   "use those (or install the runtime packages) instead of " + dirs + ".")
            out.append(_finding(an, "broad-copy-from", ins, msg, fix=fix,
                                details={"from": ref, "paths": broad, "dest": _dest_of(ins)}))
    return out


_JUNK = (".git", "node_modules", "log", "tmp")


def _no_dockerignore(an: Analysis) -> list[Finding]:
    out = []
    ctx = Path(an.opts.context) if an.opts.context else None
    ign = an.opts.dockerignore
    for stage in an.df.stages:
        for ins in stage.instructions:
            srcs = _context_sources(ins)
            if ins.onbuild or not any(norm(s) == "." or s in ("*", "./*") for s in srcs):
                continue  # an ONBUILD COPY uses the child build's context, which is not here
            present: list[tuple[str, int]] = []
            if ctx is not None and ctx.is_dir():
                from bilge.dockerfile.dockerignore import dir_size
                for j in _JUNK:
                    p = ctx / j
                    if p.exists() and not (ign is not None and ign.excluded(j)):
                        present.append((j, dir_size(p, ctx, ign) if p.is_dir() else p.stat().st_size))
            if ign is None:
                msg = f"{ins.short(40)} copies the whole build context and there is no .dockerignore"
                if ctx is not None:
                    msg += f" (looked in {ctx})"
                if present:
                    msg += ": it brings in " + ", ".join(f"{n}/" for n, _ in present)
                else:
                    msg += ": .git, node_modules, log/, tmp/ and local files such as .env will be copied when present"
                msg += "."
            else:
                if not present:
                    continue
                msg = (f"{ins.short(40)} copies the whole build context and {ign.path} does not exclude "
                       + ", ".join(n for n, _ in present) + ".")
            total = sum(s for _, s in present) if present else None
            out.append(_finding(an, "no-dockerignore", ins, msg, bytes_=total,
                                details={"dockerignore": ign.path if ign else None,
                                         "unexcluded": [n for n, _ in present],
                                         "context_bytes": dict(present)}))
    return out


def _recursive_chown(an: Analysis) -> list[Finding]:
    out = []
    seq = an.shipped_instructions()
    for pos, ins in enumerate(seq):
        if ins.keyword != "RUN":
            continue
        facts = an.facts(ins)
        if not facts.chowns:
            continue
        hits: list[tuple[str, Instruction]] = []
        for ch in facts.chowns:
            if "$" in ch.path or ch.path == "/":
                continue
            for e in seq[:pos]:
                for c in _creators(an, e):
                    if c.path != "/" and under(c.path, ch.path) and (e.keyword in ("COPY", "ADD") or c.what in (
                            "node_modules", "gems", "git clone", "extracted files", "copied files")):
                        hits.append((ch.path, e))
        if not hits:
            continue
        lines = sorted({e.line for _, e in hits})
        paths = sorted({p for p, _ in hits})
        msg = (f"{ins.short(50)} changes owner/mode of everything under {', '.join(paths)}, which line"
               f"{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))} added: each file is copied into this "
               "layer again.")
        out.append(_finding(an, "recursive-chown", ins, msg, related=lines, details={"paths": paths}))
    return out


# --- configuration ------------------------------------------------------------------------------------------

def apply_config(findings: list[Finding], disable: Iterable[str] = (), severity: Mapping[str, str] | None = None,
                 ) -> list[Finding]:
    off = {d.strip().lower() for d in disable}
    sev = {k.lower(): v.lower() for k, v in (severity or {}).items()}
    out = []
    for f in findings:
        if f.rule in off:
            continue
        if f.rule in sev:
            f = replace(f, severity=sev[f.rule])
        out.append(f)
    return out
