"""no-dockerignore: the whole context is copied without a .dockerignore."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding, measured, norm
from bilge.dockerfile.rules.common import context_sources, dest_of
from bilge.units import human_bytes

if TYPE_CHECKING:
    from bilge.dockerfile.cost import Measure

RULE = Rule(
    "no-dockerignore", "low",
    "The whole build context is copied without a .dockerignore that excludes .git, node_modules, log, tmp",
    "`COPY . .` copies everything the context sends: .git history, local node_modules, logs, temporary "
    "files, and local secrets such as .env. They cost bytes and can leak.",
    "Add a .dockerignore beside the Dockerfile (or at the context root) with at least `.git`, "
    "`**/node_modules`, `log`, `tmp`, `.env*`.",
    ("size", "security"),
)


_JUNK = (".git", "node_modules", "log", "tmp")


def check(an: Analysis) -> list[Finding]:
    out = []
    ctx = Path(an.opts.context) if an.opts.context else None
    ign = an.opts.dockerignore
    for stage in an.df.stages:
        for ins in stage.instructions:
            srcs = context_sources(ins)
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
            out.append(finding(an, RULE, ins, msg, bytes_=total,
                                details={"dockerignore": ign.path if ign else None,
                                         "unexcluded": [n for n, _ in present],
                                         "context_bytes": dict(present)}))
    return out


def measure(f, an, image, m: Measure, layer, line_of_layer, report, show) -> Finding:
    if layer is None:
        return f
    ins = next(i for i in an.df.instructions if i.line == f.line)
    dest = dest_of(ins)
    junk = {j: m.bytes_under(layer, [f"{dest.rstrip('/')}/{j}"]) for j in (".git", "node_modules", "log", "tmp")}
    found = {k: v for k, v in junk.items() if v}
    total = sum(found.values())
    if found:
        text = "this layer holds " + ", ".join(f"{k}/ ({human_bytes(v)})" for k, v in found.items()) + "."
    else:
        text = f"this layer holds none of .git, node_modules, log, tmp under {dest} (layer total {human_bytes(m.layer_bytes(layer))})."
    return measured(f, text, total, junk_bytes=found)
