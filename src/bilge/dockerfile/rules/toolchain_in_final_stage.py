"""toolchain-in-final-stage: the shipped stage installs compilers, headers or git (and
single-stage-build, which the same check reports when there is one stage)."""

from __future__ import annotations

import re

from bilge.dockerfile.parse import Instruction
from bilge.dockerfile.purge import auto_purged
from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding
from bilge.dockerfile.rules.common import toolchain_packages, whole_layer
from bilge.dockerfile.rules.single_stage_build import RULE as SINGLE_STAGE

RULE = Rule(
    "toolchain-in-final-stage", "medium",
    "The shipped stage installs compilers, headers or git",
    "build-essential/build-base, gcc, *-dev headers, git, JDKs and build tools are needed to build, not to "
    "run; in the shipped stage they are often hundreds of MB.",
    "Install them in a builder stage and `COPY --from=builder` only the build outputs; install only runtime "
    "libraries (libpq5, not libpq-dev) in the final stage.",
    ("size",),
)


_TOOLCHAIN_IMAGES = re.compile(r"(^|/)(golang|rust|gcc|maven|gradle|buildpack-deps|sdk)(:|$)")
_JDK_IMAGES = re.compile(r"(^|/)(openjdk|eclipse-temurin|amazoncorretto|sapmachine|azul/zulu-openjdk)(:|$)")


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


def check(an: Analysis) -> list[Finding]:
    out = []
    single = len(an.df.stages) == 1
    rule = SINGLE_STAGE if single else RULE
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
                out.append(finding(an, rule, ins, msg, details={"base": stage.base}))
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
            out.append(finding(an, rule, ins, msg, details={"packages": tools}))
    return out


measure = whole_layer
