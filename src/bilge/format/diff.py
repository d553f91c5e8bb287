"""Render a :class:`~bilge.diff.DiffResult`: JSON (schema ``bilge.diff/1``) and text. No computing here
beyond arranging what the result holds."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from bilge.diff import (
    DIGEST,
    KIND,
    LINK,
    MODE,
    MTIME,
    UID,
    Change,
    DiffResult,
    HistoryItem,
    Node,
    SideSummary,
    percent,
)
from bilge.units import human_bytes

SCHEMA = "bilge.diff/1"


def _side_json(s: SideSummary) -> dict[str, Any]:
    return {"reference": s.reference, "digest": s.digest, "platform": s.platform, "layers": s.layers,
            "compressed_bytes": s.compressed_bytes, "layer_bytes": s.layer_bytes,
            "visible_bytes": s.visible_bytes, "reclaimable_bytes": s.reclaimable_bytes,
            "files": s.files, "paths": s.paths}


def _node_json(n: Node | None) -> dict[str, Any] | None:
    if n is None:
        return None
    out: dict[str, Any] = {"type": n[KIND], "mode": f"{n[MODE]:04o}", "uid": n[UID], "gid": n[UID + 1],
                           "mtime": n[MTIME]}
    if n[KIND] == "file":
        d = n[DIGEST]
        out["sha256"] = d.hex() if isinstance(d, bytes) and len(d) == 32 else None
    if n[KIND] == "symlink":
        out["target"] = n[LINK]
    if n[KIND] in ("char", "block"):
        out["device"] = n[LINK].replace(",", ":")
    return out


def _entry_json(c: Change) -> dict[str, Any]:
    return {"path": c.path, "change": c.change, "what": list(c.what), "a_size": c.a_size, "b_size": c.b_size,
            "a": _node_json(c.a), "b": _node_json(c.b)}


def _hist_json(i: HistoryItem | None) -> dict[str, Any] | None:
    if i is None:
        return None
    return {"index": i.index, "created_by": i.text, "layer": i.layer, "diff_id": i.diff_id,
            "layer_compressed_bytes": i.layer_bytes}


def to_json(r: DiffResult) -> dict[str, Any]:
    counts, by = r.counts(), r.bytes_by_change()
    delta = {k: getattr(r.b, k) - getattr(r.a, k)
             for k in ("compressed_bytes", "layer_bytes", "visible_bytes", "reclaimable_bytes", "files")}
    return {
        "schema": SCHEMA,
        "summary": {
            "a": _side_json(r.a), "b": _side_json(r.b), "delta": delta,
            "delta_percent": {k: percent(getattr(r.a, k), getattr(r.b, k))
                              for k in ("compressed_bytes", "visible_bytes", "reclaimable_bytes")},
            "shared_layers": r.shared_layers,
            "differs": r.differs,
            "changes": counts,
            "added_bytes": by["added"], "removed_bytes": by["removed"],
            "modified_a_bytes": by["modified_a"], "modified_b_bytes": by["modified_b"],
            "ignored": list(r.ignored), "mtime": r.mtime,
        },
        "directories": [{"directory": g.directory, "added": g.added, "removed": g.removed, "modified": g.modified,
                         "a_bytes": g.a_bytes, "b_bytes": g.b_bytes, "delta": g.delta,
                         "changed_bytes": g.changed_bytes} for g in r.groups],
        "depth": r.depth,
        "entries": [_entry_json(c) for c in r.changes],
        "config": {"changes": [{"key": c.key, "a": c.a, "b": c.b} for c in r.config]},
        "history": {"rows": [{"op": h.op, "same_layer": h.same_layer, "a": _hist_json(h.a), "b": _hist_json(h.b)}
                             for h in r.history]},
    }


def write_json(doc: Any, out: Any, indent: int = 0) -> None:
    """``doc`` as JSON: objects indented by key, every list item on one line of its own.

    The same data as ``json.dump(doc, out, indent=2)``, but each list item is encoded by the C
    encoder (``json.dumps`` without ``indent``): a diff of two 40,000-file images spent ~5 s in the
    pure-Python pretty printer that ``indent`` selects, now a fraction of a second. Still one change
    per line for ``grep`` and readers."""
    pad = "  " * (indent + 1)
    if isinstance(doc, dict) and doc:
        out.write("{\n")
        for i, (key, value) in enumerate(doc.items()):
            out.write(f"{pad}{json.dumps(key)}: ")
            write_json(value, out, indent + 1)
            out.write(",\n" if i < len(doc) - 1 else "\n")
        out.write("  " * indent + "}")
    elif isinstance(doc, list) and doc:
        out.write("[\n")
        last = len(doc) - 1
        for i, item in enumerate(doc):
            out.write(pad + json.dumps(item) + (",\n" if i < last else "\n"))
        out.write("  " * indent + "]")
    else:
        out.write(json.dumps(doc))


def _pct(a: int, b: int) -> str:
    p = percent(a, b)
    if p is None:
        return ""
    sign = "+" if p > 0 else "−" if p < 0 else "±"
    return f"{sign}{abs(p):.1f}%" if abs(p) < 10 else f"{sign}{abs(p):.0f}%"


def _signed(n: int) -> str:
    return ("+" if n > 0 else "−" if n < 0 else "±") + human_bytes(abs(n))


def _table(*columns: tuple[str, str], wrap: tuple[str, ...] = ("A", "B", "path", "directory")) -> Table:
    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name, justify in columns:
        t.add_column(name, justify=justify, no_wrap=name not in wrap, overflow="ellipsis")  # type: ignore[arg-type]
    return t


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(console, r: DiffResult, *, top: int = 10, history: bool = True) -> None:
    a, b = r.a, r.b
    console.print(f"[bold]A[/bold] {escape(a.reference)}  {a.digest[:19]}  {a.platform or '-'}  {_n(a.layers, 'layer')}")
    console.print(f"[bold]B[/bold] {escape(b.reference)}  {b.digest[:19]}  {b.platform or '-'}  {_n(b.layers, 'layer')}"
                  + (f"  ({r.shared_layers} bottom layers shared)" if r.shared_layers else ""))
    console.print()
    t = _table(("", "left"), ("A", "right"), ("", "left"), ("B", "right"), ("delta", "right"), ("", "right"))
    for label, key in (("compressed", "compressed_bytes"), ("visible", "visible_bytes"),
                       ("reclaimable", "reclaimable_bytes")):
        va, vb = getattr(a, key), getattr(b, key)
        t.add_row(label, human_bytes(va), "→", human_bytes(vb), _signed(vb - va), _pct(va, vb))
    t.add_row("files", f"{a.files:,}", "→", f"{b.files:,}", f"{b.files - a.files:+,}", _pct(a.files, b.files))
    console.print(t)
    counts, by = r.counts(), r.bytes_by_change()
    console.print()
    if not r.changes:
        console.print("Filesystems: no differences" + (" (ignoring " + ", ".join(map(escape, r.ignored)) + ")"
                                                       if r.ignored else "")
                      + ("" if r.mtime else "; mtimes not compared (--mtime)"))
    else:
        console.print(f"[bold]Filesystems[/bold]: {counts['added']:,} added ({human_bytes(by['added'])}), "
                      f"{counts['removed']:,} removed ({human_bytes(by['removed'])}), "
                      f"{counts['modified']:,} modified"
                      + (f" (content {human_bytes(by['modified_a'])} → {human_bytes(by['modified_b'])})"
                         if by['modified_a'] or by['modified_b'] else "")
                      + f", {counts['type']:,} changed type"
                      + ("" if r.mtime else "; mtimes not compared (--mtime)"))
        console.print()
        console.print(f"[bold]Biggest changes by directory[/bold] (depth {r.depth})")
        t = _table(("changed", "right"), ("A", "right"), ("B", "right"), ("delta", "right"),
                   ("+ / - / ~", "right"), ("directory", "left"))
        for g in r.groups[:top]:
            t.add_row(human_bytes(g.changed_bytes), human_bytes(g.a_bytes), human_bytes(g.b_bytes), _signed(g.delta),
                      f"{g.added}/{g.removed}/{g.modified}", escape(g.directory))
        console.print(t)
        if len(r.groups) > top:
            console.print(f"  … and {len(r.groups) - top} more directories; --top N or --format json for all")
        console.print()
        console.print("[bold]Biggest changed paths[/bold]")
        biggest = sorted(r.changes, key=lambda c: (-c.changed_bytes, -abs(c.delta), c.path))[:top]
        t = _table(("", "left"), ("A", "right"), ("B", "right"), ("path", "left"), ("what", "left"))
        mark = {"added": "+", "removed": "-", "modified": "~", "type": "T"}
        for c in biggest:
            t.add_row(mark[c.change], _size(c.a), _size(c.b), escape(c.path), _what(c))
        console.print(t)
        if len(r.changes) > top:
            console.print(f"  … and {len(r.changes) - top:,} more paths; --format json for all")
    console.print()
    if not r.config:
        console.print("Config: no differences (Entrypoint, Cmd, Env, User, WorkingDir, ExposedPorts, Labels, ...)")
    else:
        console.print("[bold]Config[/bold]")
        t = _table(("key", "left"), ("A", "left"), ("", "left"), ("B", "left"))
        for c in r.config:
            t.add_row(escape(c.key), escape(_short(c.a, 50)) if c.a is not None else "[dim](absent)[/dim]", "→",
                      escape(_short(c.b, 50)) if c.b is not None else "[dim](absent)[/dim]")
        console.print(t)
    if history and r.history:
        console.print()
        console.print("[bold]History[/bold] (= same instruction and layer, ~ changed, - only in A, + only in B)")
        t = _table(("", "left"), ("#", "right"), ("A", "left"), ("#", "right"), ("B", "left"), wrap=())
        for h in r.history:
            t.add_row(h.op, _hidx(h.a), _htext(h.a, h.op == "=" and h.same_layer), _hidx(h.b), _htext(h.b, False))
        console.print(t)


def _n(k: int, word: str) -> str:
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


def _size(n: Node | None) -> str:
    if n is None:
        return ""
    return human_bytes(n[1]) if n[KIND] == "file" else n[KIND]


def _what(c: Change) -> str:
    if c.change == "type":
        return f"{c.a[KIND] if c.a else '?'} → {c.b[KIND] if c.b else '?'}"
    if c.change == "modified":
        parts = []
        for w in c.what:
            if w == "mode" and c.a and c.b:
                parts.append(f"mode {c.a[MODE]:04o}→{c.b[MODE]:04o}")
            elif w == "owner" and c.a and c.b:
                parts.append(f"owner {c.a[UID]}:{c.a[UID + 1]}→{c.b[UID]}:{c.b[UID + 1]}")
            elif w == "target" and c.a and c.b:
                parts.append(escape(f"-> {c.a[LINK]} → {c.b[LINK]}"))
            elif w == "device" and c.a and c.b:
                parts.append(f"device {c.a[LINK].replace(',', ':')}→{c.b[LINK].replace(',', ':')}")
            else:
                parts.append(w)
        return ", ".join(parts)
    n = c.a or c.b
    return c.change + (f" ({n[KIND]})" if n and n[KIND] != "file" else "")


def _hidx(i: HistoryItem | None) -> str:
    return "" if i is None else str(i.index)


def _htext(i: HistoryItem | None, same: bool) -> str:
    if i is None:
        return ""
    text = escape(_short(i.text or "(no instruction)", 44))
    if i.layer is not None and i.layer_bytes is not None:
        text += f" [dim]({human_bytes(i.layer_bytes)})[/dim]"
    return text
