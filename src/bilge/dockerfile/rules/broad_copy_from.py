"""broad-copy-from: COPY --from copies a whole system directory."""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from typing import TYPE_CHECKING

import bilge.dockerfile.needed as needed
from bilge.dockerfile.needed import CopyNeed
from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding, measured, norm
from bilge.dockerfile.rules.common import dest_of
from bilge.units import human_bytes

if TYPE_CHECKING:
    from bilge.dockerfile.cost import Measure

RULE = Rule(
    "broad-copy-from", "medium",
    "COPY --from copies a whole system directory",
    "Copying /usr/lib, /usr/local, /lib or / from another stage brings everything that stage installed "
    "(compilers' libraries, headers, caches), and files the final base image already has are stored "
    "again.",
    "Copy only the files the program needs: `bilge deps IMAGE --entrypoint --format dockerfile --from STAGE` "
    "(or `--binary PATH`) prints the COPY lines for the shared libraries it loads; use those (or install the "
    "runtime packages) instead of the directory.",
    ("size",),
)


_BROAD = (
    "/", "/usr", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/local", "/usr/local/lib", "/usr/share", "/lib",
    "/lib64", "/lib32", "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/etc", "/var", "/usr/include", "/opt",
)
_TRIPLET = re.compile(r"^/(usr/)?lib/[a-z0-9_]+-linux-[a-z0-9_]+$")


def broad_dir(path: str) -> bool:
    return path in _BROAD or bool(_TRIPLET.match(path))


def check(an: Analysis) -> list[Finding]:
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
            out.append(finding(an, RULE, ins, msg, fix=fix,
                                details={"from": ref, "paths": broad, "dest": dest_of(ins)}))
    return out


def measure(f, an, image, m: Measure, layer, line_of_layer, report, show) -> Finding:
    if layer is None:
        return f
    b = m.layer_bytes(layer)
    dup = m.overwritten_by(layer)
    paths = ", ".join(f.details.get("paths", []))
    text = f"line {f.line} copies {human_bytes(b)} of {paths}"
    if dup:
        text += f", {human_bytes(dup)} of it over files the image already had (stored twice)"
    src = f.details.get("from", "STAGE")
    dest = str(f.details.get("dest") or "/")
    need = m.copy_need(layer, dest)
    if need is None:  # no ELF facts were collected
        text += (f"; `bilge deps {shlex.quote(report.reference)} --entrypoint --format dockerfile --from {src}` lists "
                 "the libraries the entrypoint needs (or --binary PATH for another program).")
        return measured(f, text, b, layer_bytes=b, duplicate_bytes=dup)
    if not need.resolved:
        cmd = needed.deps_command(report.reference, None, src)
        why = (f"no ELF file elsewhere in the image; {'; '.join(need.notes)}" if need.notes else
               "no Entrypoint/Cmd and no ELF file elsewhere in the image")
        text += (f"; bilge found no program outside {need.roots.dest} to resolve ({why}), so it cannot tell which "
                 f"of it is needed: name the program, `{cmd}` prints the COPY lines for it.")
        return measured(f, text, b, layer_bytes=b, duplicate_bytes=dup, needed_bytes=None,
                         deps_roots={"dest": need.roots.dest, "entrypoint": need.roots.entrypoint, "paths": [],
                                     "binaries": [], "programs": 0}, deps_command=cmd)
    cmd = needed.deps_command(report.reference, need.roots, src)
    text += "; " + _need_text(need)
    fix = (f"Copy only the files needed: `{cmd}` prints the COPY lines for the closure of those programs (they "
           f"are listed too: keep what is under {need.roots.dest}), or name one program with `--binary PATH`; use them "
           f"(or install the runtime packages) instead of {paths}.")
    result = measured(f, text, b, layer_bytes=b, duplicate_bytes=dup, needed_bytes=need.needed_bytes,
                         needed_files=need.needed_files, needed_links=need.needed_links,
                         likely_bytes=need.likely_bytes, likely_files=need.likely_files,
                         needed_already_bytes=need.already_bytes, needed_paths=list(need.needed_paths),
                         deps_roots={"dest": need.roots.dest, "entrypoint": need.roots.entrypoint,
                                     "paths": list(need.roots.paths), "binaries": list(need.roots.binaries),
                                     "programs": need.programs},
                         deps_missing=[{"soname": s, "needed_by": list(n)} for s, n in need.missing],
                         deps_command=cmd)
    return replace(result, fix=fix)


def _need_text(need: CopyNeed) -> str:
    """``bilge deps finds 12.4 MB in 31 files of it needed by ...`` -- or what was found instead."""
    r = need.roots
    who = []
    if (r.entrypoint and not any("Entrypoint/Cmd could not" in n for n in need.notes)
            and not any(n == ("Entrypoint/Cmd",) for _, n in need.missing)):
        who.append("the Entrypoint/Cmd")
    if r.programs:
        who.append(f"{r.programs:,} ELF file{'s' if r.programs != 1 else ''} outside {r.dest}")
    text = (f"`bilge deps` finds {human_bytes(need.needed_bytes)} in {need.needed_files:,} "
            f"file{'s' if need.needed_files != 1 else ''} of it needed by {' and '.join(who) or 'the programs'}")
    if need.needed_files and need.already_bytes:
        text += f" ({human_bytes(need.already_bytes)} of them at paths the image had before this COPY)"
    if need.likely_files:
        text += (f", + {human_bytes(need.likely_bytes)} in {need.likely_files:,} file"
                 f"{'s' if need.likely_files != 1 else ''} likely needed at run time (loaded by libc with dlopen)")
    text += "; it counts the libraries the loader maps, not data files or modules a program loads itself."
    if need.missing:
        shown = ", ".join(f"the Entrypoint/Cmd program {s}" if n == ("Entrypoint/Cmd",) else
                          f"{s} (needed by {', '.join(n[:2])}{' ...' if len(n) > 2 else ''})"
                          for s, n in need.missing[:3])
        more = f" and {len(need.missing) - 3} more" if len(need.missing) > 3 else ""
        text += f" Missing in the image: {shown}{more}."
    for note in need.notes:
        text += f" Note: {note}."
    return text
