"""secret-in-layer: a RUN writes a secret into a file that stays in the layer."""

from __future__ import annotations

from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding, shorten
from bilge.dockerfile.rules.common import flows_to_shipped
from bilge.dockerfile.rules.secret_copy import measure as secret_copy_measure
from bilge.dockerfile.runmodel import strip_glob_tail, under

RULE = Rule(
    "secret-in-layer", "high",
    "A RUN writes a secret into a file that stays in the layer",
    "A RUN that writes a token into ~/.npmrc, ~/.gitconfig, .bundle/config ... and does not delete it in the "
    "same RUN commits the token into the layer's files, where anyone with the image (or stage) can read it.",
    "Use `RUN --mount=type=secret,...` so the file exists only during the RUN, or write and delete it in "
    "the same RUN (the token still appears in history if it came from an ARG: use a secret mount).",
    ("security", "secrets"),
)


def check(an: Analysis) -> list[Finding]:
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
            desc = "; ".join(f"`{shorten(w.text, 56)}` writes {what} into {path}" for path, (w, what) in seen.items())
            msg = (f"RUN ({an.role(stage)}): {desc}, and the same RUN does not delete it, so the secret is stored in "
                   "the layer's files.")
            if ins.onbuild:
                msg += " As an ONBUILD trigger this happens in every image built FROM this one."
            if shipped:
                msg += " Anyone who can pull the image can read it."
            else:
                carried = [flows_to_shipped(an, stage, p) for p in seen]
                carried_lines = [c.line for c in carried if c is not None]
                if carried_lines:
                    msg += f" Line {carried_lines[0]} copies it into the shipped image."
                    shipped = True
                else:
                    msg += " " + an.builder_note(stage) + "."
            out.append(finding(an, RULE, ins, msg, "high" if shipped else "medium",
                                details={"files": list(seen), "shipped": shipped}))
    return out


measure = secret_copy_measure
