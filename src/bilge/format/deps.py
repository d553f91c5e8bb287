"""Renderers of a :class:`bilge.deps.DepsResult`: text, json, dockerfile (COPY lines), list."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections import defaultdict
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from bilge.deps import DepFile, DepsResult, Edge

SCHEMA = "bilge.deps/1"


class LinkMode(StrEnum):
    stage = "stage"
    run = "run"


def to_json(result: DepsResult, image: Mapping[str, Any] | None = None) -> dict[str, Any]:
    edges: dict[tuple[str, str, str | None], str] = {}
    for tree in result.trees.values():
        for src, lst in tree.items():
            for e in lst:
                if e.via != "loaded":
                    edges.setdefault((src, e.name, e.target), e.via)
    return {
        "schema": SCHEMA,
        "image": dict(image) if image else None,
        "roots": [
            {"path": r.path, "canonical": r.canonical, "kind": r.kind, "origin": r.origin,
             "interpreter": r.interpreter, "libc": r.flavor}
            for r in result.roots
        ],
        "files": [_file_json(f) for f in result.files],
        "missing": [{"soname": m.soname, "needed_by": list(m.needed_by), "reason": m.reason} for m in result.missing],
        "likely": [{"path": x.path, "reason": x.reason, "present": x.present} for x in result.likely],
        "edges": [{"from": s, "name": n, "to": t, "via": v} for (s, n, t), v in sorted(edges.items(),
                                                                                       key=lambda kv: (kv[0][0], kv[0][1]))],
        "dirs": [{"path": d.path, "bytes": d.bytes, "files": d.files, "needed_bytes": d.needed_bytes,
                  "needed_files": d.needed_files, "likely_bytes": d.likely_bytes, "likely_files": d.likely_files}
                 for d in result.dirs],
        "notes": list(result.notes),
        "strict": result.strict,
        "file_count": result.file_count,
        "link_count": result.link_count,
        "total_bytes": result.total_bytes,
    }


def _file_json(f: DepFile) -> dict[str, Any]:
    out: dict[str, Any] = {"path": f.path, "kind": f.kind, "size": f.size, "needed_by": list(f.needed_by),
                           "role": f.role}
    if f.target is not None:
        out["target"] = f.target
    if f.reason:
        out["reason"] = f.reason
    if f.elf:
        out["elf"] = f.elf
    return out


def to_list(result: DepsResult) -> list[str]:
    """Every path to copy (regular files and symlinks, canonical locations), sorted."""
    return [f.path for f in result.files]


_COLLECT_DIR = "/.bilge-deps"


def _sh(path: str) -> str:
    return shlex.quote(path)


def _copy_line(stage: str, sources: list[str], dest: str) -> str:
    if any(c in p for p in sources + [dest] for c in ' \t"\'\\$'):
        return f"COPY --from={stage} " + json.dumps(sources + [dest])
    return f"COPY --from={stage} " + " ".join(sources + [dest])


def to_dockerfile(result: DepsResult, stage: str, mode: LinkMode = LinkMode.stage,
                  what: str = "") -> list[str]:
    """Lines that reproduce the closure, symlinks included, from build stage ``stage``.

    Docker's COPY copies the *target* of a symlink given as a source (and of every wildcard match);
    it keeps symlinks only inside a directory it copies. So either (``stage``) the files are gathered
    with ``tar`` in a helper stage built FROM ``stage`` -- links preserved -- and that one directory is
    copied, which works for any final image, scratch included; or (``run``) regular files are copied
    with COPY --from=STAGE, grouped by directory, and the links recreated with one ``RUN ln -s`` in
    the final image, which needs a shell there.
    """
    from bilge.units import human_bytes

    files = [f for f in result.files if f.kind == "file"]
    links = [f for f in result.files if f.kind == "symlink"]
    head = [f"# bilge deps{': ' + what if what else ''}",
            f"# {len(files)} files ({human_bytes(result.total_bytes)}) and {len(links)} symlinks"
            + (", likely-needed run-time files included" if not result.strict and result.likely else "")]
    for m in result.missing:
        head.append(f"# MISSING in the image: {m.soname} (needed by {', '.join(m.needed_by)})")
    if mode == LinkMode.stage:
        base = re.sub(r"[^a-z0-9_.-]+", "-", stage.lower()).strip("-.") or "stage"
        helper = f"{base}-deps" if not base.endswith("-deps") else f"{base}-bilge"
        paths = sorted(f.path.lstrip("/") for f in result.files)
        lines = head + [
            "# Stage 1 (put it before your final FROM): gather the files, symlinks kept, with tar.",
            f"FROM {stage} AS {helper}",
            f"RUN mkdir -p {_COLLECT_DIR} && cd / && tar -cf - \\",
        ]
        lines += [f"      {_sh(p)} \\" for p in paths]
        lines += [f"    | tar -xpf - -C {_COLLECT_DIR}", "",
                  "# Stage 2 (in your final stage): one COPY of a directory keeps the symlinks.",
                  f"COPY --from={helper} {_COLLECT_DIR}/ /"]
        return lines
    by_dir: dict[str, list[str]] = defaultdict(list)
    for f in files:
        by_dir[posixpath.dirname(f.path)].append(f.path)
    lines = head + ["# Regular files, grouped by directory (COPY of a symlink would copy its target):"]
    for d in sorted(by_dir):
        lines.append(_copy_line(stage, sorted(by_dir[d]), d.rstrip("/") + "/"))
    if links:
        parents = sorted({posixpath.dirname(f.path) for f in links} - {"/"} - set(by_dir))
        cmds = []
        if parents:
            cmds.append("mkdir -p " + " ".join(_sh(p) for p in parents))
        # a link over an existing real directory would land inside it: keep the directory instead
        cmds.append('l() { if [ -d "$2" ] && [ ! -L "$2" ]; then echo "kept directory $2" >&2; '
                    'else ln -sfn "$1" "$2"; fi; }')
        for f in sorted(links, key=lambda x: (x.path.count("/"), x.path)):
            cmds.append(f"l {_sh(f.target or '')} {_sh(f.path)}")
        lines.append("# Symlinks, recreated with their own names and targets (needs /bin/sh in this image):")
        lines.append("RUN " + " \\\n && ".join(cmds))
    return lines


def render_text(out, result: DepsResult, *, reference: str = "", tree_limit: int = 8) -> None:
    from rich.markup import escape

    from bilge.units import human_bytes

    size_of = {f.path: f.size for f in result.files}
    link_target = {f.path: f.target for f in result.files if f.kind == "symlink"}
    if reference:
        out.print(f"[bold]bilge deps[/bold] {escape(reference)}")
    roots = result.roots
    if len(roots) <= tree_limit:
        for r in roots:
            label = {"script": "script", "static": "static ELF"}.get(r.kind, r.flavor or "ELF")
            extra = f"  #! {escape(r.interpreter)}" if r.kind == "script" and r.interpreter else ""
            out.print(f"[bold]{escape(r.path)}[/bold]  [dim]{label}, {human_bytes(size_of.get(r.canonical, 0))}"
                      f"{'' if r.path == r.canonical else ', -> ' + escape(r.canonical)}[/dim]{extra}", soft_wrap=True)
            tree = result.trees.get(r.canonical)
            if tree:
                _print_tree(out, tree, r.canonical, size_of, link_target)
    else:
        counts: dict[str, set[str]] = defaultdict(set)
        for tree in result.trees.values():
            for src, edges in tree.items():
                for e in edges:
                    if e.target:
                        counts[e.target].add(src)
        out.print(f"[bold]{len(roots)} roots[/bold] ({sum(1 for r in roots if r.kind == 'elf')} dynamic ELF, "
                  f"{sum(1 for r in roots if r.kind == 'static')} static, "
                  f"{sum(1 for r in roots if r.kind == 'script')} scripts); libraries they load:")
        libs = [f for f in result.files if f.kind == "file" and f.path in counts]
        for f in sorted(libs, key=lambda f: (-len(counts.get(f.path, ())), f.path))[:40]:
            out.print(f"  {escape(f.path):70} {human_bytes(f.size):>9}  [dim]needed by {len(counts.get(f.path, ())):,}[/dim]",
                      soft_wrap=True)
        if len(libs) > 40:
            out.print(f"  [dim]... {len(libs) - 40} more (--format json or list for all)[/dim]")
    likely = [f for f in result.files if f.role == "likely" and f.kind == "file"]
    absent = [x for x in result.likely if not x.present]
    if likely or absent:
        out.print()
        out.print("[bold]Likely needed at run time[/bold] [dim](loaded with dlopen; --strict leaves them out)[/dim]")
        groups: dict[str, list[DepFile]] = defaultdict(list)
        for f in likely:
            groups[f.reason or ""].append(f)
        for reason, fs in sorted(groups.items(), key=lambda kv: kv[1][0].path):
            what = escape(fs[0].path) if len(fs) == 1 else f"{len(fs)} files in {escape(_common_dir(fs))}"
            out.print(f"  {what}  [dim]{human_bytes(sum(f.size for f in fs))} -- {escape(reason)}[/dim]", soft_wrap=True)
        if absent:
            out.print(f"  [dim]named but not in the image (skipped at run time): "
                      f"{escape(', '.join(x.path for x in absent))}[/dim]", soft_wrap=True)
    if result.missing:
        out.print()
        out.print("[bold red]Missing[/bold red] (the loader fails on these)")
        for m in result.missing:
            why = f" -- {escape(m.reason)}" if m.reason else ""
            out.print(f"  [red]{escape(m.soname)}[/red]  needed by {escape(', '.join(m.needed_by))}[dim]{why}[/dim]")
    if result.notes:
        out.print()
        out.print("[bold]Notes[/bold]")
        for n in result.notes:
            out.print(f"  [yellow]{escape(n)}[/yellow]")
    out.print()
    for d in result.dirs:
        extra = (f" (+ {human_bytes(d.likely_bytes)} in {d.likely_files:,} likely needed at run time)"
                 if d.likely_files else "")
        out.print(f"copying {escape(d.path)}: {human_bytes(d.bytes)} in {d.files:,} files; "
                  f"needed: {human_bytes(d.needed_bytes)} in {d.needed_files:,} files{extra}", soft_wrap=True)
    strict_bytes = sum(f.size for f in result.files if f.kind == "file" and f.role != "likely")
    strict_files = sum(1 for f in result.files if f.kind == "file" and f.role != "likely")
    likely_bytes = sum(f.size for f in likely)
    line = (f"[bold]closure[/bold]: {human_bytes(strict_bytes)} in {strict_files:,} files "
            f"and {sum(1 for f in result.files if f.kind == 'symlink' and f.role != 'likely'):,} symlinks")
    if likely:
        line += f"; + {human_bytes(likely_bytes)} in {len(likely):,} likely-needed files"
    out.print(line)


def _common_dir(files: list[DepFile]) -> str:
    return posixpath.commonpath([f.path for f in files]) if files else "/"


def _print_tree(out, tree: Mapping[str, tuple[Edge, ...]], root: str, size_of: Mapping[str, int],
                link_target: Mapping[str, str | None]) -> None:
    """lddtree's layout: a library is expanded under the first level that needs it, shown once."""
    from rich.markup import escape

    from bilge.units import human_bytes

    shown: set[str] = {root}

    def walk(node: str, prefix: str) -> None:
        edges = [e for e in tree.get(node, ()) if not e.likely and (e.target is None or e.target not in shown)]
        fresh = [e.target for e in edges if e.target is not None]
        shown.update(fresh)
        for i, e in enumerate(edges):
            last = i == len(edges) - 1
            branch = "└── " if last else "├── "
            if e.target is None:
                out.print(f"{prefix}{branch}[red]{escape(e.name)} => not found[/red]"
                          + (f" [dim]({escape(e.note)})[/dim]" if e.note else ""), soft_wrap=True)
                continue
            where = e.target if e.opened in (None, e.target) else f"{e.opened} -> {e.target}"
            via = "" if e.via in ("default", "ld.so.cache", "interp", "loaded") else f" [dim]via {e.via}[/dim]"
            out.print(f"{prefix}{branch}{escape(e.name)} => {escape(where)}  "
                      f"[dim]{human_bytes(size_of.get(e.target, 0))}[/dim]{via}", soft_wrap=True)
            walk(e.target, prefix + ("    " if last else "│   "))

    walk(root, "  ")
