"""cleanup-later-layer: a RUN deletes files an earlier layer created."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bilge.dockerfile.parse import Instruction
from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding, line_list, measured
from bilge.dockerfile.rules.common import cleanup_matches
from bilge.units import human_bytes

if TYPE_CHECKING:
    from bilge.dockerfile.cost import Measure

RULE = Rule(
    "cleanup-later-layer", "medium",
    "A RUN deletes files an earlier layer created: nothing is freed",
    "Each instruction commits a layer. Deleting files (rm, apt-get purge, apk del, yarn cache clean ...) in a "
    "later RUN only hides them; their bytes stay in the layer that created them and in every pull.",
    "Do the cleanup in the same RUN that creates the files (`apt-get install ... && ... && apt-get purge ... "
    "&& rm -rf ...`), keep them out of the context with .dockerignore, or build in a separate stage and copy "
    "only the results.",
    ("size",),
)


def check(an: Analysis) -> list[Finding]:
    out = []
    for ins, matches in cleanup_matches(an):
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
                f", and {line_list(cl[1:])}" if len(cl) > 1 else "") + ")")
        related = sorted({c.line for _, c, _ in matches})
        msg = (f"{ins.short(60)} removes " + "; ".join(parts) + f" in a later layer: the bytes stay in the layer"
               f"{'s' if len(related) > 1 else ''} at {line_list(related)}, so the image is not smaller.")
        fix = (f"Move the cleanup into the instruction that creates the files (line {related[0]}), keep them out of "
               "the build context with .dockerignore, or do the work in a build stage and copy only the results.")
        out.append(finding(an, RULE, ins, msg, related=related, fix=fix,
                            details={"removes": list(by_what), "created_by": related}))
    return out


def measure(f, an, image, m: Measure, layer, line_of_layer, report, show) -> Finding:
    if layer is None:
        return f
    per_writer = m.hidden.get(layer, {})
    gone = [(p, b, w, how) for p, b, w, how in m.hidden_files.get(layer, ())]
    total = sum(b for _, b, _, _ in gone)
    ins_short = f.instruction if len(f.instruction) <= 60 else f.instruction[:59] + "…"
    if not gone:
        return measured(f, f"line {f.line} `{ins_short}` hides no file of an earlier layer in this image.", 0,
                         hidden_bytes=0)
    parts = [f"{human_bytes(b)} were committed by {line_of_layer(w)}"
             for w, b in sorted(per_writer.items(), key=lambda kv: -kv[1]) if b > 0][:5]
    if not parts:
        parts = ["only empty files and directories"]
    text = f"line {f.line} `{ins_short}` frees 0 bytes: " + ", ".join(parts) + "."
    return measured(f, text, total, hidden_bytes=total, hidden_by_layer={str(k): v for k, v in per_writer.items()})
