"""Render an :class:`~bilge.analyze.Analysis`: JSON (schema ``bilge.analyze/1``) and text."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from bilge.analyze import Analysis
from bilge.history import instruction
from bilge.units import human_bytes

SCHEMA = "bilge.analyze/1"


def to_json(a: Analysis, ci: list[dict[str, Any]] | None = None, top: int | None = None) -> dict[str, Any]:
    im, s, d = a.image, a.summary, a.dive
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "image": {
            "reference": im.reference,
            "transport": im.transport,
            "digest": im.digest or im.image_id,
            "manifest_digest": im.digest,
            "image_id": im.image_id,
            "platform": str(im.platform) if im.platform else None,
            "tags": list(im.repo_tags),
            "layers": len(im.layers),
        },
        "summary": {
            "compressed_bytes": s.compressed_bytes,
            "uncompressed_bytes": s.uncompressed_bytes,
            "layer_bytes": s.layer_bytes,
            "visible_bytes": s.visible_bytes,
            "reclaimable_bytes": s.reclaimable_bytes,
            "reclaimable_percent": round(s.reclaimable_percent, 4),
            "base_layers": s.base_layers,
            "base_source": s.base_source,
            "base_layer_bytes": s.base_layer_bytes,
            "user_layer_bytes": s.user_layer_bytes,
            "user_reclaimable_bytes": s.user_reclaimable_bytes,
            "entries": s.entries,
            "files": s.files,
            "directories": s.directories,
            "symlinks": s.symlinks,
            "hardlinks": s.hardlinks,
            "verified": s.verified,
        },
        "dive": {
            "efficiency": d.efficiency,
            "wasted_bytes": d.wasted_bytes,
            "size_bytes": d.size_bytes,
            "user_size_bytes": d.user_size_bytes,
            "user_wasted_percent": d.user_wasted_percent,
            "inefficient_files": [{"path": p, "count": c, "bytes": b} for p, c, b in d.inefficient],
        },
        "layers": [
            {
                "index": r.index, "digest": r.digest, "diff_id": r.diff_id, "created_by": r.created_by,
                "history_index": r.history_index, "instruction": r.instruction, "compression": r.compression,
                "compressed_bytes": r.compressed_bytes, "uncompressed_bytes": r.uncompressed_bytes,
                "layer_bytes": r.layer_bytes, "reclaimable_bytes": r.reclaimable_bytes, "visible_bytes": r.visible_bytes,
                "hides_bytes": r.hides_bytes, "entries": r.entries, "files_added": r.files_added,
                "files_modified": r.files_modified, "files_deleted": r.files_deleted, "base": r.is_base,
            }
            for r in a.layers
        ],
        "wasted": [
            {
                "path": g.path, "bytes": g.bytes, "files": g.files, "layer": g.layer,
                "hidden_by_layer": g.hidden_by_layer, "how": g.how, "created_by": g.created_by,
                "hidden_by_created_by": g.hidden_by_created_by, "fix": g.fix,
            }
            for g in (a.wasted if top is None else a.wasted[:top])
        ],
        "flows": [{"layer": f.layer, "hidden_by_layer": f.hidden_by_layer, "files": f.files, "bytes": f.bytes}
                  for f in a.flows],
        "directories": [{"path": x.path, "bytes": x.bytes, "files": x.files} for x in a.directories],
        "findings": [{"kind": f.kind, "path": f.path, "layer": f.layer, "message": f.message} for f in a.findings],
        "notes": list(a.notes),
    }
    if ci is not None:
        out["ci"] = ci
    return out


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _instr(created_by: str, width: int = 60) -> str:
    return _short(instruction(created_by)[1] or created_by or "(no history)", width)


def _table(*columns: tuple[str, str]) -> Table:
    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name, justify in columns:
        t.add_column(name, justify=justify, no_wrap=name not in ("instruction", "path"))  # type: ignore[arg-type]
    return t


def render_text(console, a: Analysis, *, top: int = 10, show_layers: bool = True) -> None:
    im, s, d = a.image, a.summary, a.dive
    name = im.repo_tags[0] if im.repo_tags else im.reference
    console.print(Text.assemble(("Image ", "bold"), (name, "bold cyan"),
                                f"  {im.platform or 'unknown platform'}  {(im.digest or im.image_id)[:19]}"))
    console.print(
        f"  {len(im.layers)} layers, {s.files:,} files · compressed {human_bytes(s.compressed_bytes)} · "
        f"layers {human_bytes(s.layer_bytes)} · visible {human_bytes(s.visible_bytes)}"
    )
    style = "bold red" if s.reclaimable_percent >= 10 else "bold"
    console.print(f"  dead weight: [{style}]{human_bytes(s.reclaimable_bytes)} ({s.reclaimable_percent:.1f}% of the "
                  f"layers)[/{style}] that no one can see but everyone pulls")
    console.print(f"  dive: efficiency {d.efficiency * 100:.2f}% · wasted {human_bytes(d.wasted_bytes)} · "
                  f"user wasted {d.user_wasted_percent * 100:.2f}%")
    if show_layers:
        console.print()
        console.print("[bold]Layers[/bold]")
        t = _table(("#", "right"), ("compressed", "right"), ("file bytes", "right"), ("dead weight", "right"),
                   ("+ / ~ / -", "right"), ("instruction", "left"))
        for r in a.layers:
            label = f"{r.index}{'*' if r.is_base else ''}"
            dead = human_bytes(r.reclaimable_bytes) if r.reclaimable_bytes else "-"
            t.add_row(label, human_bytes(r.compressed_bytes), human_bytes(r.layer_bytes), dead,
                      f"{r.files_added}/{r.files_modified}/{r.files_deleted}", _instr(r.created_by))
        console.print(t)
        if s.base_layers:
            console.print(f"  [dim]* base: {s.base_source}[/dim]")
    if a.wasted:
        console.print()
        console.print(f"[bold]Dead weight: {human_bytes(s.reclaimable_bytes)} that later layers hid but cannot free[/bold]")
        t = _table(("bytes", "right"), ("path", "left"), ("written in", "right"), ("hidden in", "right"))
        for g in a.wasted[:top]:
            path = g.path + (f" ({g.files} files)" if g.files > 1 else "")
            t.add_row(human_bytes(g.bytes), path, f"layer {g.layer}", f"layer {g.hidden_by_layer} ({g.how})")
        console.print(t)
        if len(a.wasted) > top:
            rest = sum(g.bytes for g in a.wasted[top:])
            console.print(f"  … and {len(a.wasted) - top} more ({human_bytes(rest)}); --top N or --format json for all")
        console.print()
        console.print("[bold]What to do[/bold]")
        flows: dict[tuple[int, int], int] = {}
        for f in a.flows:
            flows[(f.layer, f.hidden_by_layer)] = f.bytes
        shown = 0
        for (w, h), b in sorted(flows.items(), key=lambda kv: -kv[1]):
            if shown == 3:
                break
            shown += 1
            group = next(g for g in a.wasted if (g.layer, g.hidden_by_layer) == (w, h))
            console.print(f"  • {human_bytes(b)} written by layer {w} ({_instr(group.created_by, 50)}) and hidden by "
                          f"layer {h} ({_instr(group.hidden_by_created_by, 50)}):")
            console.print(f"    {group.fix}")
    else:
        console.print()
        console.print("No dead weight: every byte in the layers is visible in the final filesystem.")
    if a.directories:
        console.print()
        console.print("[bold]Largest directories of the final filesystem[/bold]")
        t = _table(("bytes", "right"), ("files", "right"), ("directory", "left"))
        for x in a.directories[:top]:
            t.add_row(human_bytes(x.bytes), f"{x.files:,}", x.path)
        console.print(t)
    if a.findings:
        console.print()
        console.print(f"[bold yellow]{len(a.findings)} filesystem finding(s)[/bold yellow]")
        for f in a.findings[:top]:
            console.print(f"  • {f.message}")
    for note in a.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def render_ci(out, verdicts, *, failed: bool) -> None:
    """The CI rules' verdicts (``bilge.ci``) after the report, and PASS/FAIL."""
    out.print()
    out.print("[bold]CI rules[/bold]")
    for v in verdicts:
        style = {"pass": "green", "fail": "bold red", "disabled": "dim"}[v.status]
        detail = f"{v.actual} vs {v.threshold}" if v.status != "disabled" else ""
        out.print(f"  [{style}]{v.status.upper():8}[/{style}] {v.rule:30} {detail}  [dim]{v.source}[/dim]")
    out.print("[bold red]FAIL[/bold red]" if failed else "[green]PASS[/green]")
