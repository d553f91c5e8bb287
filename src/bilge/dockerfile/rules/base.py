"""The shared vocabulary of the lint rules: :class:`Rule` metadata, :class:`Finding`, :class:`LintOptions`,
the :class:`Analysis` of a Dockerfile every rule reads, and the helpers that build findings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import bilge.dockerfile.secretnames as sn
from bilge.dockerfile.dockerignore import DockerIgnore
from bilge.dockerfile.parse import Dockerfile, Instruction, Stage, Var, join_path
from bilge.dockerfile.runmodel import RunFacts
from bilge.dockerfile.runs import analyze_run

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title: str
    rationale: str
    fix: str
    tags: tuple[str, ...] = ()


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


def finding(an: Analysis, rule: Rule, ins: Instruction, message: str, severity: str | None = None,
             related: Iterable[int] = (), details: Mapping[str, Any] | None = None, fix: str | None = None,
             bytes_: int | None = None) -> Finding:
    st = an.df.stages[ins.stage] if ins.stage >= 0 else None
    return Finding(
        rule=rule.id, severity=severity or rule.severity, line=ins.line, end_line=ins.end_line,
        stage=(st.name or f"#{st.index}") if st else None, instruction=ins.short(), message=message,
        fix=fix or rule.fix, related=tuple(sorted(set(related))), details=dict(details or {}),
        bytes=bytes_,
    )


def runs_after(stage: Stage, ins: Instruction, onbuild: bool = False) -> list[Instruction]:
    return [i for i in stage.instructions if i.keyword == "RUN" and i.line > ins.line and i.onbuild == onbuild]


def the_run(lines: list[int]) -> str:
    return ("the RUN at " if len(set(lines)) == 1 else "the RUNs at ") + line_list(lines)


def shorten(text: str, width: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def line_list(lines: list[int]) -> str:
    lines = sorted(set(lines))
    if len(lines) == 1:
        return f"line {lines[0]}"
    return "lines " + ", ".join(str(n) for n in lines[:-1]) + f" and {lines[-1]}"


def measured(f: Finding, text: str, nbytes: int | None, **details) -> Finding:
    d = dict(f.details)
    d.update(details)
    d["measured"] = True
    return replace(f, message=f"{f.message} Measured: {text}", bytes=nbytes, details=d)
