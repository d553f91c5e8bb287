"""`bilge report`: one self-contained HTML file (inline CSS, JS and SVG; nothing fetched when opened).

One entry point, :func:`render_html`, over :class:`ReportInput` (the analyses, already computed).
Every number it shows comes from the JSON documents the other commands print -- ``bilge.analyze/1``
(:func:`bilge.format.analyze.to_json`), ``bilge.secrets/1``, ``bilge.lint/1``, ``bilge.deps/1`` --
gathered by :func:`report_document` (``bilge report --format json`` prints it), plus the size tree of
:mod:`bilge.fstree` for the treemap. The renderer formats; it does not compute.

Templates, CSS and JS are package data in ``bilge/data/report/``; the treemap is drawn in the browser
by a small hand-written squarified-treemap script (no library: see docs/report.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bilge.analyze import Analysis
from bilge.fstree import TreeNode
from bilge.units import human_bytes

SCHEMA = "bilge.report/1"
TEMPLATE = "report.html.j2"

# Tableau-like colours: distinguishable, and never the only carrier of meaning (every
# rectangle and bar also names its layer in text; dead bytes are hatched).
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f",
           "#e15759", "#bab0ac", "#a0cbe8", "#8cd17d")


@dataclass(frozen=True)
class ReportInput:
    """What one read of an image produced, for every section of the report."""

    analysis: Analysis
    tree: TreeNode
    secrets: Any = None  # bilge.secrets.model.Report, or None when not scanned
    lint: dict[str, Any] | None = None  # a bilge.lint/1 document (bilge.commands.lint.to_json), or None
    deps: Any = None  # bilge.deps.DepsResult, or None without roots
    show_secrets: bool = False
    version: str = ""


def tree_json(node: TreeNode) -> dict[str, Any]:
    """The tree, compact: n name, k kind (d/f/r), v visible bytes, x dead bytes, f files, xf dead files,
    l / xl [[layer, bytes], ...], c children, e entries not listed (collapsed dir or rest node)."""
    out: dict[str, Any] = {"n": node.name, "k": node.kind[0], "v": node.bytes, "f": node.files}
    if node.dead_bytes or node.dead_files:
        out["x"] = node.dead_bytes
        out["xf"] = node.dead_files
    if node.by_layer:
        out["l"] = [list(p) for p in node.by_layer]
    if node.dead_by_layer:
        out["xl"] = [list(p) for p in node.dead_by_layer]
    if node.children:
        out["c"] = [tree_json(c) for c in node.children]
    if node.entries:
        out["e"] = node.entries
    return out


def report_document(inp: ReportInput) -> dict[str, Any]:
    """The data of the report: the other commands' JSON documents, unchanged, and the size tree."""
    from bilge.format.analyze import to_json as analyze_json

    doc: dict[str, Any] = {"schema": SCHEMA, "analyze": analyze_json(inp.analysis), "tree": tree_json(inp.tree),
                           "secrets": None, "lint": inp.lint, "deps": None}
    if inp.secrets is not None:
        from bilge.format.secrets import to_json as secrets_json

        doc["secrets"] = secrets_json(inp.secrets, show_secrets=inp.show_secrets)
    if inp.deps is not None:
        from bilge.format.deps import to_json as deps_json

        im = inp.analysis.image
        doc["deps"] = deps_json(inp.deps, {"reference": im.reference, "image_id": im.image_id,
                                           "platform": str(im.platform) if im.platform else None})
    return doc


def _script_json(value: Any) -> str:
    """JSON safe inside <script type="application/json">: no '<' (so no '</script>' or '<!--')."""
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _environment(compiled: bytes | None = None, keep: list[bytes] | None = None):
    """The template environment. ``compiled``: the page template's code from :func:`compile_template`
    (jinja2 checks it against the template's source and compiles again when they differ); ``keep``: a
    list that receives the code of what this environment compiles."""
    from jinja2 import BytecodeCache, Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    class InMemory(BytecodeCache):
        def load_bytecode(self, bucket) -> None:
            if compiled is not None:
                bucket.bytecode_from_string(compiled)

        def dump_bytecode(self, bucket) -> None:
            if keep is not None:
                keep.append(bucket.bytecode_to_string())

    env = Environment(loader=PackageLoader("bilge", "data/report"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, bytecode_cache=InMemory())

    def num(value: Any, key: str = "", unit: str = "bytes") -> Markup:
        """A number as shown, with its exact value and its place in the JSON data (`data-key`)."""
        if value is None:
            return Markup("&ndash;")
        shown = human_bytes(value) if unit == "bytes" else f"{value:,}" if isinstance(value, int) else str(value)
        attr = Markup(' data-key="{}"').format(key) if key else ""
        return Markup('<data value="{}"{}>{}</data>').format(value, attr, shown)

    def short(text: str | None, width: int = 120) -> str:
        text = " ".join((text or "").split())
        return text if len(text) <= width else text[: width - 1] + "…"

    def colour(layer: int | None) -> str:
        return PALETTE[layer % len(PALETTE)] if layer is not None and layer >= 0 else "#999999"

    def pct(part: int, whole: int) -> str:
        return f"{100.0 * part / whole:.3f}" if whole else "0"

    env.filters["bytes"] = human_bytes
    env.filters["short"] = short
    env.globals.update(num=num, colour=colour, pct=pct)
    return env


def _asset(name: str) -> str:
    from importlib import resources

    return (resources.files("bilge") / "data" / "report" / name).read_text(encoding="utf-8")


def compile_template() -> bytes:
    """The page template, compiled (jinja2's bytecode: a marshalled code object, with the checksum of the
    template's source): what :func:`render_html` takes as ``compiled``. ``bilge report`` makes it in its
    forked child, beside the analyses (compiling the template takes about as long as rendering it)."""
    keep: list[bytes] = []
    _environment(keep=keep).get_template(TEMPLATE)
    return keep[0]


def render_html(inp: ReportInput, doc: dict[str, Any] | None = None, compiled: bytes | None = None) -> str:
    """The report as one HTML document (a str). ``doc``: :func:`report_document` of ``inp``, if made;
    ``compiled``: the template from :func:`compile_template`, if made."""
    from bilge.history import instruction

    doc = doc if doc is not None else report_document(inp)
    a = doc["analyze"]
    layers_view = [{"index": r["index"], "instruction": instruction(r["created_by"])[1] or r["created_by"]}
                   for r in a["layers"]]
    client = {"tree": doc["tree"], "palette": list(PALETTE), "layers": layers_view,
              "reclaimable_bytes": a["summary"]["reclaimable_bytes"]}
    max_layer = max((r["layer_bytes"] for r in a["layers"]), default=0)
    return _environment(compiled).get_template(TEMPLATE).render(
        doc=doc, a=a, s=a["summary"], secrets=doc["secrets"], lint=doc["lint"], deps=doc["deps"],
        layers_view=layers_view, max_layer=max_layer, palette=PALETTE, version=inp.version,
        css=_asset("report.css"), js=_asset("report.js"), data_json=_script_json(client),
    )
