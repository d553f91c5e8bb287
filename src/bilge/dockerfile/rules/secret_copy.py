"""secret-copy: a credential file copied into a layer."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from pathlib import Path
from typing import TYPE_CHECKING

import bilge.dockerfile.secretnames as sn
from bilge.dockerfile.dockerignore import walk_context
from bilge.dockerfile.keyfiles import not_a_secret
from bilge.dockerfile.parse import Instruction, Stage, join_path
from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding, line_list, measured
from bilge.dockerfile.rules.common import WHOLE_CONTEXT, context_sources, dest_of, flows_to_shipped, has_glob
from bilge.dockerfile.runmodel import glob_prefix, strip_glob_tail, under

if TYPE_CHECKING:
    from bilge.dockerfile.cost import Measure

RULE = Rule(
    "secret-copy", "high",
    "A credential file is copied into a layer",
    "COPY/ADD of .npmrc, .netrc, SSH keys, .env, *.pem, cloud credentials... stores the file in a layer. "
    "Deleting it in a later RUN does not remove it from the layer that added it. `COPY . .` copies them too "
    "unless .dockerignore excludes them.",
    "Mount it only for the RUN that needs it: `RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci` "
    "(or type=ssh for git over SSH), and add the file to .dockerignore.",
    ("security", "secrets"),
)


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
    dest = dest_of(ins)
    sources = context_sources(ins)
    for src in sources:
        clean = src.strip("/") if src not in WHOLE_CONTEXT else "."
        clean = re.sub(r"^\./", "", clean) or "."
        label = sn.credential_file(clean) if clean != "." else None
        dest_file = dest if len(sources) == 1 and not ins.args[-1].endswith("/") else posixpath.join(
            dest, posixpath.basename(clean))
        if label is None and clean != ".":
            label = sn.credential_file(dest_file)
        on_disk = ctx / clean if ctx is not None else None
        if label:
            if ign is not None and not has_glob(clean) and ign.excluded(clean):
                continue  # the build would fail: the file is not in the context
            if on_disk is not None and on_disk.is_file() and clean.endswith(".pem"):
                if _private_key_file(on_disk) is False:
                    continue  # a certificate, not a key
            if not has_glob(clean) and not_a_secret(clean, dest_file, on_disk):
                continue  # a public key: by its content when at hand, else by its names (issue 12)
            hits.append((clean, label))
            continue
        if ctx is None or on_disk is None or not on_disk.exists():
            continue
        if on_disk.is_dir() or has_glob(clean):
            root = clean if not has_glob(clean) else glob_prefix("/" + clean).lstrip("/") or "."
            for entry in walk_context(ctx, ign, root=root, skip_dirs=frozenset({".git", "node_modules"})):
                if entry.is_dir:
                    continue
                if has_glob(clean) and not fnmatch.fnmatch(entry.rel, clean) and not fnmatch.fnmatch(
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


def check(an: Analysis) -> list[Finding]:
    out = []
    for stage in an.df.stages:
        for ins in stage.instructions:
            if ins.keyword not in ("COPY", "ADD") or ins.flag("from") is not None:
                continue
            hits = _credential_hits(an, ins)
            if not hits:
                continue
            dest = dest_of(ins)
            shipped = stage.index in an.content or ins.onbuild
            carried = None if shipped else flows_to_shipped(an, stage, dest)
            files = ", ".join(f"{p} ({label})" for p, label in hits[:8]) + (
                f" and {len(hits) - 8} more" if len(hits) > 8 else "")
            whole = any(s in WHOLE_CONTEXT or s.rstrip("/") in (".", "") for s in context_sources(ins))
            head = (f"{ins.short(40)} copies the whole context, which includes {files}," if whole
                    else f"{ins.short(60)} puts {files}")
            later = _deleted_later(an, stage, ins, dest, hits)
            msg = head + f" into a layer of {an.role(stage)}."
            if later:
                msg += f" The RUN at {line_list(later)} deletes it, but the layer from line {ins.line} keeps it."
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
            fix = RULE.fix
            if whole:
                fix = ("Add " + ", ".join(sorted({p for p, _ in hits})[:6]) + " to .dockerignore, and mount what the "
                       "build needs with `RUN --mount=type=secret,id=...,target=...`.")
            out.append(finding(an, RULE, ins, msg, sev, related=later + ([carried.line] if carried else []),
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
                target = dest if len(context_sources(ins)) == 1 and p == context_sources(ins)[0].strip("/") else \
                    posixpath.join(dest, p if p != "." else "")
                if under(target, rp) or under(join_path(dest, posixpath.basename(p)), rp) or (
                        rm.path == target):
                    lines.append(r.line)
    return sorted(set(lines))


def measure(f, an, image, m: Measure, layer, line_of_layer, report, show) -> Finding:
    if layer is None:
        return f
    files = [p for p, _ in m.files_by_layer.get(layer, ())]
    wanted = [str(x).rsplit("/", 1)[-1] for x in f.details.get("files", [])]
    hits = [p for p in files if p.rsplit("/", 1)[-1] in wanted]
    if hits:
        return measured(f, f"present in the layer of line {f.line}: " + ", ".join("/" + p for p in hits[:5]) + ".",
                         None, confirmed=True, image_paths=["/" + p for p in hits])
    return f
