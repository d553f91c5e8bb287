"""Render a secrets :class:`Report`: text (rich), JSON ``bilge.secrets/1``, SARIF 2.1.0.

Formatters never compute and never print a secret whole: ``match`` is the masked form, and every
history line or command shown has each secret found in it replaced by its masked form — unless
``show_secrets`` is set (the ``--show-secrets`` flag).
"""

from __future__ import annotations

import textwrap
from collections import Counter
from typing import Any

from rich.console import Console
from rich.text import Text

from bilge.format.sarif import SarifResult, SarifRule, sarif_log
from bilge.secrets.mask import Redactor
from bilge.secrets.model import Finding, Report, ScanStats, Tally
from bilge.secrets.precision import specific
from bilge.secrets.rules import SEVERITIES, Ruleset, severity_rank
from bilge.units import human_bytes

SCHEMA = "bilge.secrets/1"


_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _all_findings(report: Report) -> list[Finding]:
    return list(report.findings) + [s.finding for s in report.silenced]


def _redactor(report: Report, show_secrets: bool):
    """A function that masks secrets in a text.

    Values found in a history line or config value are masked in that text (where they stand);
    in any other text only values long and specific enough to be a credential by themselves
    (:func:`bilge.secrets.precision.specific`) are masked, and never inside a longer word.
    Silenced findings count too.
    """
    if show_secrets:
        return lambda text: text
    found = [f for f in _all_findings(report) if f.secret]
    pairs = [(f.secret, f.masked) for f in found if specific(f.secret)]
    standing: dict[str, list[tuple[str, str]]] = {}
    for f in found:
        if f.location.kind != "file" and f.location.instruction:
            standing.setdefault(f.location.instruction, []).append((f.secret, f.masked))
    general = Redactor(pairs)

    def red(text: str) -> str:
        if not text:
            return text
        extra = standing.get(text)
        return Redactor(pairs + extra)(text) if extra else general(text)
    return red


def match_text(f: Finding, show_secrets: bool) -> str:
    return f.secret if show_secrets else f.masked


def where_text(f: Finding) -> str:
    loc = f.location
    if loc.kind == "file":
        line = f":{loc.line}" if loc.line else ""
        return f"/{loc.path}{line} (layer {loc.layer})"
    if loc.kind == "history":
        layer = f", layer {loc.layer}" if loc.layer is not None else ", no layer"
        key = f" {loc.key}" if loc.key else ""
        return f"history #{loc.history_index}{layer}{key}"
    if loc.kind == "annotation":
        return f"annotation {loc.key} ({loc.instruction})"
    if loc.kind == "config":
        return f"config {loc.key}"
    return f"{loc.kind} {loc.key}"


def stats_json(stats: ScanStats) -> dict[str, object]:
    """What the scan read (:class:`bilge.secrets.model.ScanStats`)."""
    def c(x: Tally) -> dict[str, int]:
        return {"files": x.files, "bytes": x.bytes}

    return {
        "layers": stats.layers,
        "entries": stats.entries,
        "scanned": c(stats.scanned),
        "skipped": {"binary": c(stats.binary), "archives": c(stats.archives), "excluded": c(stats.excluded)},
        "credential_files": stats.credential_files,
        "history_entries": stats.history_entries,
        "config_values": stats.config_values,
    }


def to_json(report: Report, *, show_secrets: bool = False) -> dict[str, Any]:
    red = _redactor(report, show_secrets)

    def finding(f: Finding) -> dict[str, Any]:
        loc = f.location
        return {
            "rule": f.rule,
            "title": f.title,
            "severity": f.severity,
            "location": {
                "kind": loc.kind,
                "layer": loc.layer,
                "layer_digest": loc.layer_digest,
                "path": loc.path,
                "line": loc.line,
                "history_index": loc.history_index,
                "key": loc.key,
                "instruction": red(loc.instruction) if loc.instruction else None,
            },
            "deleted": f.deleted,
            "hidden_by": f.hidden_by,
            "hidden_how": f.hidden_how,
            "also_in_history": list(f.also_in_history),
            "also_at": list(f.also_at),
            "match": match_text(f, show_secrets),
            "fingerprint": f.fingerprint,
            "fix": f.fix,
            "note": f.note or None,
        }

    by_sev = Counter(f.severity for f in report.findings)
    return {
        "schema": SCHEMA,
        "image": {"reference": report.reference, "image_id": report.image_id, "digest": report.digest,
                  "platform": report.platform, "layers": report.layers},
        "threshold": report.threshold,
        "files_scanned": report.files_scanned,
        "secrets_shown": show_secrets,
        "findings": [finding(f) for f in report.findings],
        "silenced": [dict(finding(s.finding), reason=s.reason, source=s.source) for s in report.silenced],
        "summary": {
            "findings": len(report.findings),
            "at_or_above_threshold": len(report.failing()),
            "by_severity": {s: by_sev.get(s, 0) for s in SEVERITIES},
            "silenced": len(report.silenced),
        },
        "stats": stats_json(report.stats),
    }


def to_sarif(report: Report, ruleset: Ruleset, *, show_secrets: bool = False) -> dict[str, Any]:
    red = _redactor(report, show_secrets)
    rules: dict[str, SarifRule] = {}
    results = []
    for f in report.findings:
        if f.rule not in rules:
            rule = ruleset.get(f.rule)
            rules[f.rule] = SarifRule(
                id=f.rule, title=f.title, description=(rule.description or rule.title) if rule else f.title,
                severity=rule.severity if rule else f.severity, help=f.fix, tags=("security", "secret"),
            )
        loc = f.location
        uri = loc.path if loc.kind == "file" and loc.path else f"image/{loc.kind}"
        deleted = (f" It is deleted in the final filesystem (layer {f.hidden_by}) but layer {loc.layer} still ships it."
                   if f.deleted else "")
        message = f"{f.title}: {match_text(f, show_secrets)} in {where_text(f)}.{deleted} {f.fix}"
        props: dict[str, Any] = {"kind": loc.kind, "deleted": f.deleted, "image": report.reference}
        for name in ("layer", "layer_digest", "history_index", "key"):
            value = getattr(loc, name)
            if value is not None:
                props[name] = value
        if loc.instruction:
            props["instruction"] = red(loc.instruction)
        results.append(SarifResult(rule_id=f.rule, severity=f.severity, message=message, uri=uri,
                                   start_line=loc.line, fingerprint=f.fingerprint, properties=props))
    return sarif_log("bilge-secrets", rules.values(), results)


def _shorten(text: str, width: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _where_line(f: Finding) -> str:
    loc = f.location
    if loc.kind == "file":
        line = f":{loc.line}" if loc.line else ""
        text = f"/{loc.path}{line}  in layer {loc.layer}"
        if f.deleted:
            text += f" — {f.hidden_how or 'deleted'} in layer {f.hidden_by}, but layer {loc.layer} still ships it"
        else:
            text += " — present in the final filesystem"
        if f.also_at:
            more = ", ".join(f.also_at[:5])
            extra = f" and {len(f.also_at) - 5} more" if len(f.also_at) > 5 else ""
            text += f"  (also at {more}{extra})"
        return text
    if loc.kind == "history":
        layer = f"layer {loc.layer}" if loc.layer is not None else "no layer"
        text = f"history #{loc.history_index} ({layer})"
        if loc.key:
            text += f"  {loc.key}"
        if f.also_in_history:
            more = ", ".join(f"#{i}" for i in f.also_in_history[:12])
            extra = f" and {len(f.also_in_history) - 12} more" if len(f.also_in_history) > 12 else ""
            text += f"  (also in history {more}{extra})"
        return text
    text = where_text(f)
    if f.also_in_history:
        text += "  (set in history " + ", ".join(f"#{i}" for i in f.also_in_history[:12]) + ")"
    return text


def render_text(console: Console, report: Report, *, show_secrets: bool = False, verbose: bool = False) -> None:
    red = _redactor(report, show_secrets)
    limit = severity_rank(report.threshold)
    shown = [f for f in report.findings if f.rank >= limit]
    below = len(report.findings) - len(shown)
    image_id = (report.image_id or "")[:19]
    console.print(Text.assemble(("bilge secrets ", "bold"), (report.reference, "bold"),
                                f"  {image_id}  {report.platform or ''}  {report.layers} layers"))
    for f in shown:
        console.print()
        console.print(Text.assemble((f" {f.severity.upper()} ", _STYLE.get(f.severity, "")), "  ",
                                    (f.rule, "bold"), "  ", f.title))
        rows: list[tuple[str, str, str]] = [("where", _where_line(f), "")]
        loc = f.location
        if loc.instruction and loc.kind in ("history", "config"):
            rows.append(("", _shorten(red(loc.instruction), 300), "dim"))
        elif loc.kind == "file" and loc.instruction and verbose:
            rows.append(("added by", _shorten(red(loc.instruction), 300), "dim"))
        rows.append(("match", match_text(f, show_secrets), ""))
        if f.note:
            rows.append(("note", f.note, ""))
        rows.append(("fix", f.fix, ""))
        rows.append(("id", f.fingerprint, "dim"))
        width = max(40, (console.width or 100) - 11)
        for label, value, style in rows:
            lines = textwrap.wrap(value, width, break_long_words=True, break_on_hyphens=False) or [""]
            for i, line in enumerate(lines):
                console.print(Text.assemble((f"{label if i == 0 else '':>9} ", "dim"), (line, style)))
    console.print()
    counts = Counter(f.severity for f in shown)
    parts = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if counts.get(s))
    if shown:
        summary = f"{len(shown)} finding{'s' if len(shown) != 1 else ''} at or above {report.threshold} ({parts})"
    else:
        summary = f"No secrets at or above {report.threshold}"
    if below:
        summary += f"; {below} below (list them with --severity low)"
    if report.silenced:
        summary += f"; {len(report.silenced)} silenced"
    console.print(Text(summary + ".", style="bold" if shown else ""))
    st = report.stats
    if report.files_scanned:
        text = (f"Scanned {st.history_entries} history entries, {st.config_values} config values, "
                f"{st.scanned.files} text files ({human_bytes(st.scanned.bytes)}) in {report.layers} layers.")
        skipped = []
        if st.binary.files:
            skipped.append(f"{st.binary.files} binaries ({human_bytes(st.binary.bytes)})")
        if st.archives.files:
            skipped.append(f"{st.archives.files} compressed files ({human_bytes(st.archives.bytes)})")
        if st.excluded.files:
            skipped.append(f"{st.excluded.files} excluded by config ({human_bytes(st.excluded.bytes)})")
        console.print(Text(text, style="dim"))
        if skipped:
            console.print(Text("Not text-scanned: " + ", ".join(skipped) + ".", style="dim"))
    else:
        console.print(Text(f"Scanned {st.history_entries} history entries and {st.config_values} config values "
                           "(layers not read: --config-only).", style="dim"))
