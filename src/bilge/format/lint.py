"""Renderers of lint findings: text, json, sarif."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from bilge.severity import rank as severity_rank

SCHEMA = "bilge.lint/1"


def fingerprint(f) -> str:
    text = " ".join(f.instruction.split())
    return hashlib.sha256(f"{f.rule}\0{f.stage}\0{text}".encode()).hexdigest()[:32]


def finding_json(f) -> dict[str, Any]:
    """One lint finding (:class:`bilge.dockerfile.rules.Finding`) in ``bilge.lint/1``."""
    out: dict[str, Any] = {
        "rule": f.rule, "severity": f.severity, "line": f.line, "end_line": f.end_line or f.line,
        "stage": f.stage, "instruction": f.instruction, "message": f.message, "bytes": f.bytes,
        "fix": f.fix,
    }
    if f.related:
        out["related_lines"] = list(f.related)
    if f.details:
        out["details"] = dict(f.details)
    return out


def image_json(report) -> dict[str, Any]:
    """What ``--image`` measured (:class:`bilge.dockerfile.cost.ImageReport`) in ``bilge.lint/1``."""
    return {
        "reference": report.reference, "image_id": report.image_id, "digest": report.digest, "layers": report.layers,
        "layer_bytes": report.total_layer_bytes, "base_layers": report.base_layers,
        "aligned": {str(k): {"history": v, "layer": report.layer_of.get(k)} for k, v in sorted(report.aligned.items())},
        "unaligned_lines": report.unaligned, "notes": report.notes,
    }


def to_json(df, findings, opts, fail_on: str, failed: bool, report=None) -> dict[str, Any]:
    an_target = df.target(opts.target)
    chain = {s.index for s in df.chain(an_target)}
    by_sev: dict[str, int] = {}
    for f in findings:
        by_sev[f.severity] = by_sev.get(f.severity, 0) + 1
    return {
        "schema": SCHEMA,
        "dockerfile": df.path,
        "target": an_target.name or f"#{an_target.index}",
        "stages": [{"index": s.index, "name": s.name, "base": s.base, "line": s.line, "shipped": s.index in chain}
                   for s in df.stages],
        "context": opts.context,
        "dockerignore": opts.dockerignore.path if opts.dockerignore else None,
        "image": image_json(report) if report is not None else None,
        "fail_on": fail_on,
        "findings": [finding_json(f) for f in findings],
        "summary": {
            "findings": len(findings),
            "by_severity": dict(sorted(by_sev.items(), key=lambda kv: -severity_rank(kv[0]))),
            "measured": sum(1 for f in findings if f.bytes is not None) if report is not None else None,
            "failed": failed,
        },
    }


def to_sarif(df, findings) -> dict[str, Any]:
    from bilge.dockerfile.rules import RULES
    from bilge.format.sarif import SarifResult, SarifRule, sarif_log

    rules = [SarifRule(r.id, r.title, r.rationale, r.severity, help=r.fix, tags=r.tags) for r in RULES.values()]
    uri = df.path
    if uri != "-":
        p = Path(uri)
        try:
            uri = p.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            uri = p.as_posix()
    else:
        uri = "Dockerfile"
    results = []
    for f in findings:
        props: dict[str, Any] = {"stage": f.stage}
        if f.bytes is not None:
            props["bytes"] = f.bytes
        results.append(SarifResult(rule_id=f.rule, severity=f.severity, message=f"{f.message} Fix: {f.fix}",
                                   uri=uri, start_line=f.line, fingerprint=fingerprint(f), properties=props))
    log = sarif_log("bilge-lint", rules, results)
    for res, f in zip(log["runs"][0]["results"], findings, strict=True):
        region = res["locations"][0]["physicalLocation"].get("region")
        if region is not None and f.end_line and f.end_line > f.line:
            region["endLine"] = f.end_line
    return log


def render_text(out, df, findings, opts, fail_on: str, report=None) -> None:
    import textwrap

    from rich.markup import escape
    from rich.text import Text

    from bilge.units import human_bytes

    target = df.target(opts.target)
    n_stages = len(df.stages)
    head = f"[bold]{escape(df.path)}[/bold]  {n_stages} stage{'s' if n_stages != 1 else ''}"
    if n_stages > 1:
        head += f", shipped: stage {escape(target.label)} (line {target.line})"
    if report is not None:
        head += f"  image: {escape(report.reference)}"
    if not findings:
        out.print(head + "  [green]no findings[/green]")
        for note in getattr(report, "notes", []) or []:
            out.print(f"[yellow]note:[/yellow] {escape(note)}")
        return
    out.print(head)
    if report is not None:
        out.print(f"[dim]{len(report.aligned)} instructions aligned with the image history; "
                  f"{report.base_layers} base layer(s); {report.layers} layers, "
                  f"{human_bytes(report.total_layer_bytes)} of files in layers[/dim]")
        for note in report.notes:
            out.print(f"[yellow]note:[/yellow] {escape(note)}")
    out.print()
    styles = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}
    for f in findings:
        sev = f.severity.upper()
        line = Text()
        line.append(f"{df.path}:{f.line}", style="bold")
        line.append("  ")
        line.append(f"{sev:<6}", style=styles.get(f.severity, ""))
        line.append("  ")
        line.append(f.rule, style="bold")
        if f.bytes is not None:
            line.append(f"  {human_bytes(f.bytes)}", style="magenta")
        out.print(line)
        width = max(60, (out.width or 120) - 1)
        out.print(Text(textwrap.fill(f.message, width, initial_indent="    ", subsequent_indent="    ",
                                     break_on_hyphens=False)), soft_wrap=True)
        out.print(Text(textwrap.fill("fix: " + f.fix, width, initial_indent="    ", subsequent_indent="    ",
                                     break_on_hyphens=False), style="dim"), soft_wrap=True)
    by_sev: dict[str, int] = {}
    for f in findings:
        by_sev[f.severity] = by_sev.get(f.severity, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(by_sev.items(), key=lambda kv: -severity_rank(kv[0])))
    summary = f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({parts})"
    out.print()
    out.print(summary + (f"  [dim](fail-on: {fail_on})[/dim]" if fail_on != "never" else ""))
