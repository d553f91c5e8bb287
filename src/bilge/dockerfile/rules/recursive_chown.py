"""recursive-chown: chown/chmod -R in a later layer stores files twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bilge.dockerfile.parse import Instruction
from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding, measured
from bilge.dockerfile.rules.common import _creators
from bilge.dockerfile.runmodel import under
from bilge.units import human_bytes

if TYPE_CHECKING:
    from bilge.dockerfile.cost import Measure


RULE =     Rule("recursive-chown", "low",
         "A RUN chown/chmod -R rewrites files an earlier layer added: they are stored twice",
         "Changing the owner or mode of a file in a later layer copies the whole file into the new layer.",
         "Set ownership while copying: `COPY --chown=app:app` / `COPY --chmod=755`, or run chown in the same "
         "RUN that creates the files.",
         ("size",))


def check(an: Analysis) -> list[Finding]:
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
        out.append(finding(an, RULE, ins, msg, related=lines, details={"paths": paths}))
    return out


def measure(f, an, image, m: Measure, layer, line_of_layer, report, show) -> Finding:
    if layer is None:
        return f
    dup = m.overwritten_by(layer)
    return measured(f, f"line {f.line} stores {human_bytes(dup)} of earlier layers' files again.", dup,
                     duplicate_bytes=dup)
