"""secret-arg: a secret passed as ARG or ENV (recorded in the history or the config)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import bilge.dockerfile.secretnames as sn
from bilge.dockerfile.parse import Instruction, Stage, Var
from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding, measured, runs_after, the_run
from bilge.redact import mask as redact_mask

if TYPE_CHECKING:
    from bilge.dockerfile.cost import Measure

RULE = Rule(
    "secret-arg", "high",
    "A secret passed as ARG or ENV is recorded in the image history or config",
    "Docker records the value of every build argument in the history entry of each RUN that follows the "
    "ARG (`docker history` shows `|1 TOKEN=...`), and ENV values are stored in the image config "
    "(`docker inspect`). Anyone who can pull the image, or the stage, can read them. High when the "
    "stage is shipped; medium in a builder stage, which still leaks when it is pushed, built with "
    "--target, or its build cache is exported.",
    "Pass the secret as a BuildKit secret: `RUN --mount=type=secret,id=token,env=TOKEN ...` (or "
    "`cat /run/secrets/token`) and build with `docker build --secret id=token,env=TOKEN`; remove the ARG/ENV.",
    ("security", "secrets"),
)


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
                runs = [r for r in runs_after(stage, ins, ins.onbuild) if name in r.scope]
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
                    how.append(f"{the_run(naming)}, which use{'s' if len(naming) == 1 else ''} it")
                if silent:
                    have = "has" if len(silent) == 1 else "have"
                    how.append(("and by " if naming else "") + f"{the_run(silent)}, which {have} it in scope"
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
            out.append(finding(an, RULE, ins, message, sev, related=runs,
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
            out.append(finding(an, RULE, ins, message, "high" if shipped else "medium",
                                related=[ins.scope[r].line for k, v, _ in hits for r in
                                         re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", v.raw or "") if r in ins.scope],
                                details={"names": [h[0] for h in hits], "shipped": shipped, "env": True}))
    return out


def measure(f, an, image, m: Measure, layer, line_of_layer, report, show) -> Finding:
    names = f.details.get("names", [])
    hits = []
    if f.details.get("env"):
        env = image.env
        for n in names:
            if n in env and env[n]:
                hits.append(f"the image config has {n}={redact_mask(env[n]) if not show else env[n]}")
    else:
        for h in image.history:
            for n in names:
                mt = re.search(rf"(?:^|\s){re.escape(n)}=(\S*)", h.created_by)
                if mt and mt.group(1):
                    v = mt.group(1)
                    hits.append(f"history entry {h.index} records {n}={redact_mask(v) if not show else v}")
                    break
            if len(hits) >= 2:
                break
    if hits:
        return measured(f, "; ".join(hits) + ".", None, confirmed=True)
    where = "config" if f.details.get("env") else "history"
    return measured(f, f"this image's {where} does not contain a value for {', '.join(names)}.", None,
                     confirmed=False)


def check(an: Analysis) -> list[Finding]:
    return _secret_arg(an) + _secret_env(an)
