"""secret-literal: a literal credential written in the Dockerfile."""

from __future__ import annotations

import bilge.dockerfile.secretnames as sn
from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding

RULE = Rule(
    "secret-literal", "high",
    "A literal credential is written in the Dockerfile",
    "A token or a URL with a password written into a RUN, LABEL, ADD URL or heredoc is stored in the image "
    "history or files, and in your source repository.",
    "Revoke the credential, remove it from the Dockerfile and pass it with `--secret`.",
    ("security", "secrets"),
)


def check(an: Analysis) -> list[Finding]:
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
            out.append(finding(an, RULE, ins, msg, "high" if shipped else "medium",
                                details={"kinds": kinds, "shipped": shipped}))
    return out


measure = None  # nothing to measure: the value is in the Dockerfile itself
