"""``bilge secrets REF``: every credential an image still carries.

Exit codes: 0 no finding at or above ``--severity`` (default high), 1 some, 2 bad input.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from bilge.commands._common import write_atomic
from bilge.commands._sourceopts import SOURCE_ARGS, SourceArgs, with_source_options
from bilge.errors import BilgeError
from bilge.format.interface import document
from bilge.severity import SEVERITIES


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


Severity = StrEnum("Severity", {s: s for s in SEVERITIES})  # the one ladder, bilge.severity


def _secrets_config(config_path: str | None) -> tuple[dict[str, Any], Path | None, str]:
    from bilge.config import find_config, load_config

    if config_path:
        table = load_config(config_path)
        cdir = Path(config_path).resolve().parent
        source = config_path
    else:
        found, table = find_config()
        cdir = found.parent if found else None
        source = str(found) if found else ""
    section = table.get("secrets", {}) if isinstance(table, dict) else {}
    if not isinstance(section, dict):
        raise BilgeError(f"{source}: [tool.bilge.secrets] must be a table")
    return section, cdir, source


def _list_rules(ruleset: Any) -> None:
    from bilge.format.common import console
    from bilge.secrets.credfiles import FILE_RULES

    out = console()
    out.print("[bold]Format rules[/bold] (id, severity, title)")
    for r in ruleset.rules:
        out.print(f"  {r.id:28} {r.severity:9} {r.title}")
    out.print("[bold]Credential files[/bold] (recognised by path, parsed by content)")
    for fr in FILE_RULES:
        if fr.id not in ruleset.disabled:
            out.print(f"  {fr.id:28} {fr.severity:9} {fr.title}")
    if ruleset.names.enabled:
        out.print("[bold]Name rule[/bold]")
        out.print(f"  {ruleset.names.id:28} {'high/med':9} {ruleset.names.title}")


def register(app: typer.Typer) -> None:
    @app.command("secrets")
    @with_source_options
    def secrets_cmd(
        ref: str = typer.Argument(None, help="Image: docker-archive:PATH, oci:DIR, oci-archive:PATH[:TAG], or a path (sniffed). Default: the demo image.", show_default=False),
        fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="Output format."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Write the report to this file (atomically).", dir_okay=False),
        severity: Severity = typer.Option(Severity.high, "--severity", "-s", help="Exit 1 when a finding at or above this severity exists; the text report lists these."),
        show_secrets: bool = typer.Option(False, "--show-secrets", help="Print secret values in full (never do this in CI logs)."),
        platform: str | None = typer.Option(None, "--platform", help="os/arch or os/arch/variant, for a multi-platform image."),
        config: str | None = typer.Option(None, "--config", help="Config file (default: nearest .bilge.toml or pyproject.toml)."),
        ignore_file: Path | None = typer.Option(None, "--ignore-file", help="Silenced fingerprints (default: ./.bilgeignore if present)."),
        config_only: bool = typer.Option(False, "--config-only", help="Scan history, config and annotations only; do not read the layers."),
        scan_binaries: bool = typer.Option(False, "--scan-binaries", help="Also run the format rules over binary files."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Do not verify layer digests while reading."),
        list_rules: bool = typer.Option(False, "--list-rules", help="List the rules in effect and exit."),
        demo: bool = typer.Option(False, "--demo", help="Scan the demo image shipped with bilge (the default without REF)."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the instruction that added each file."),
        source_args: SourceArgs = SOURCE_ARGS,
    ) -> None:
        """Find credentials in an image: history and build args, config, annotations, and every file of every layer (deleted ones included)."""
        from bilge.format.secrets import render_text, to_json, to_sarif
        from bilge.secrets import build_report, scan_image_config, scan_source
        from bilge.secrets.ignore import from_config, read_bilgeignore
        from bilge.secrets.model import ScanStats
        from bilge.secrets.rules import load_ruleset
        from bilge.secrets.textscan import Scanner

        section, cdir, source = _secrets_config(config)
        ruleset = load_ruleset(section, cdir)
        if list_rules:
            _list_rules(ruleset)
            raise typer.Exit(0)
        if demo or not ref:
            from bilge.commands._common import demo_image_path

            ref = demo_image_path()
        ignores = from_config(section.get("ignore"), source or "config")
        if ignore_file is not None:
            if not ignore_file.is_file():
                raise BilgeError(f"ignore file not found: {ignore_file}")
            ignores += read_bilgeignore(ignore_file)
        elif Path(".bilgeignore").is_file():
            ignores += read_bilgeignore(Path(".bilgeignore"))
        scan_bins = scan_binaries or bool(section.get("scan_binaries", False))

        plat = None
        if platform:
            from bilge.image import Platform

            plat = Platform.parse(platform)
        with source_args.open(ref, platform=plat, verify=not no_verify, quiet=fmt is not OutputFormat.text) as src:
            image = src.image
            if config_only:
                stats = ScanStats()
                findings = scan_image_config(image, Scanner(ruleset), stats)
            else:
                from bilge.commands._common import progress_reporter

                advance, stop = progress_reporter(src, fmt is not OutputFormat.text)
                try:
                    findings, stats = scan_source(src, ruleset, scan_binaries=scan_bins, progress=advance)
                finally:
                    stop()
        report = build_report(image, findings, stats, threshold=severity.value, ignores=ignores,
                              files_scanned=not config_only)

        if fmt is OutputFormat.text:
            if output is not None:
                import io

                from rich.console import Console

                buf = io.StringIO()
                render_text(Console(file=buf, width=120, no_color=True, highlight=False, emoji=False,
                                    color_system=None), report, show_secrets=show_secrets, verbose=verbose)
                write_atomic(output, buf.getvalue())
            else:
                from bilge.format.common import console

                render_text(console(), report, show_secrets=show_secrets, verbose=verbose)
        else:
            doc = to_json(report, show_secrets=show_secrets) if fmt is OutputFormat.json else to_sarif(
                report, ruleset, show_secrets=show_secrets)
            text = document(doc, ascii_only=False)
            if output is not None:
                write_atomic(output, text)
            else:
                sys.stdout.write(text)
                sys.stdout.flush()
        raise typer.Exit(1 if report.failing() else 0)
