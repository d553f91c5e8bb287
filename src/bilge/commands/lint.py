"""`bilge lint [DOCKERFILE] [--image REF]`: Dockerfile mistakes that cost size or leak secrets, with their bytes."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Collection
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from bilge.commands._sourceopts import SOURCE_ARGS, SourceArgs, with_source_options
from bilge.errors import BilgeError, OutputError

SEVERITY_CHOICES = ("critical", "high", "medium", "low", "info", "never")


class Format(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    table = config.get("lint", {}) if isinstance(config, dict) else {}
    if not isinstance(table, dict):
        raise BilgeError("[tool.bilge.lint] must be a table")
    known = {"disable", "severity", "fail-on", "fail_on", "secret-names", "secret_names", "allow-names",
             "allow_names", "target", "context"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise BilgeError(f"[tool.bilge.lint]: unknown setting(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(k for k in known if '_' not in k))})")
    return table


def _check_rules(ids, where: str) -> list[str]:
    from bilge.dockerfile.rules import RULES

    out = []
    for rid in ids:
        rid = str(rid).strip().lower()
        if rid not in RULES:
            raise BilgeError(f"{where}: unknown rule {rid!r} (rules: {', '.join(RULES)})")
        out.append(rid)
    return out


def _check_severity(value: str, where: str, allow_never: bool = False) -> str:
    v = str(value).strip().lower()
    allowed = SEVERITY_CHOICES if allow_never else SEVERITY_CHOICES[:-1]
    if v not in allowed:
        raise BilgeError(f"{where}: invalid severity {value!r} (one of: {', '.join(allowed)})")
    return v


def write_output(path: str | None, text: str) -> None:
    """stdout, or PATH written atomically (a temp file in the same directory, renamed when complete)."""
    if not path or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise OutputError(f"cannot write {path}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fingerprint(f) -> str:
    text = " ".join(f.instruction.split())
    return hashlib.sha256(f"{f.rule}\0{f.stage}\0{text}".encode()).hexdigest()[:32]


def to_json(df, findings, opts, fail_on: str, failed: bool, report=None) -> dict[str, Any]:
    from bilge.dockerfile.rules import severity_rank

    an_target = df.target(opts.target)
    chain = {s.index for s in df.chain(an_target)}
    by_sev: dict[str, int] = {}
    for f in findings:
        by_sev[f.severity] = by_sev.get(f.severity, 0) + 1
    return {
        "schema": "bilge.lint/1",
        "dockerfile": df.path,
        "target": an_target.name or f"#{an_target.index}",
        "stages": [{"index": s.index, "name": s.name, "base": s.base, "line": s.line, "shipped": s.index in chain}
                   for s in df.stages],
        "context": opts.context,
        "dockerignore": opts.dockerignore.path if opts.dockerignore else None,
        "image": report.to_json() if report is not None else None,
        "fail_on": fail_on,
        "findings": [f.to_json() for f in findings],
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

    from bilge.dockerfile.rules import severity_rank
    from bilge.format.common import human_bytes

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


def register(app: typer.Typer) -> None:
    @app.command("lint")
    @with_source_options
    def lint_cmd(
        dockerfile: str = typer.Argument("Dockerfile", metavar="[DOCKERFILE]",
                                         help="The Dockerfile (default: ./Dockerfile; '-' reads stdin)."),
        image: str = typer.Option(None, "--image", "-i", metavar="REF",
                                  help="The image built from this Dockerfile: attach measured bytes to each finding "
                                       "(docker-archive:PATH, oci:DIR, oci-archive:PATH, or a path)."),
        context: str = typer.Option(None, "--context", "-c", metavar="DIR",
                                    help="Build context directory, for .dockerignore and COPY . (default: the "
                                         "Dockerfile's directory)."),
        target: str = typer.Option(None, "--target", "-t", help="The stage that is built and shipped (default: the last)."),
        fmt: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
        output: str = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the report to FILE."),
        fail_on: str = typer.Option(None, "--fail-on", metavar="SEVERITY",
                                    help="Exit 1 when a finding has this severity or higher: critical, high, medium, "
                                         "low, info, never (default: low, or [tool.bilge.lint] fail-on)."),
        disable: list[str] = typer.Option(None, "--disable", "-d", metavar="RULE", help="Turn a rule off (repeatable)."),
        config: str = typer.Option(None, "--config", help="bilge config file (default: nearest .bilge.toml or "
                                                          "pyproject.toml [tool.bilge])."),
        platform: str = typer.Option(None, "--platform", help="os/arch or os/arch/variant of --image, for multi-platform images."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip digest verification of --image."),
        show_secrets: bool = typer.Option(False, "--show-secrets", help="Print secret values in full."),
        source_args: SourceArgs = SOURCE_ARGS,
    ) -> int:
        """Dockerfile mistakes that cost image size or leak secrets; with --image, the bytes each one costs."""
        from bilge.config import load_config
        from bilge.dockerfile import dockerignore
        from bilge.dockerfile.parse import decode, parse_file, parse_text, read_bounded
        from bilge.dockerfile.rules import LintOptions, apply_config, lint, severity_rank
        from bilge.format.common import console

        if dockerfile == "-":
            df = parse_text(decode(read_bounded(sys.stdin.buffer, "<stdin>"), "<stdin>"), "-")
            start = Path.cwd()
        else:
            df = parse_file(dockerfile)
            start = Path(dockerfile).resolve().parent
        settings = _settings(load_config(config, start=start))
        where = "[tool.bilge.lint]"
        disabled = _check_rules(settings.get("disable", []) or [], f"{where} disable")
        disabled += _check_rules(disable or [], "--disable")
        sev_over = settings.get("severity", {}) or {}
        if not isinstance(sev_over, dict):
            raise BilgeError(f"{where} severity must be a table of rule = severity")
        _check_rules(sev_over.keys(), f"{where} severity")
        sev_over = {k: _check_severity(v, f"{where} severity.{k}") for k, v in sev_over.items()}
        threshold = _check_severity(
            fail_on if fail_on is not None else settings.get("fail-on", settings.get("fail_on", "low")),
            "--fail-on" if fail_on is not None else f"{where} fail-on", allow_never=True)
        ctx_dir = context or settings.get("context")
        if ctx_dir is None and dockerfile != "-":
            ctx_dir = str(Path(dockerfile).resolve().parent)
        if ctx_dir is not None and not Path(ctx_dir).is_dir():
            raise BilgeError(f"build context is not a directory: {ctx_dir}")
        ignore = dockerignore.find(ctx_dir, None if dockerfile == "-" else dockerfile) if ctx_dir else None
        opts = LintOptions(
            target=target or settings.get("target"), context=ctx_dir, dockerignore=ignore,
            secret_names=tuple(settings.get("secret-names", settings.get("secret_names", [])) or ()),
            allow_names=tuple(settings.get("allow-names", settings.get("allow_names", [])) or ()),
            show_secrets=show_secrets,
        )
        df.target(opts.target)  # a bad --target is a usage error before any work
        findings = lint(df, opts)
        report = None
        if image:
            findings, report = _with_image(df, findings, opts, image, platform, not no_verify,
                                           quiet=fmt != Format.text, disabled=set(disabled),
                                           source_args=source_args)
        findings = apply_config(findings, disabled, sev_over)
        failed = threshold != "never" and any(severity_rank(f.severity) >= severity_rank(threshold) for f in findings)
        if fmt == Format.json:
            write_output(output, json.dumps(to_json(df, findings, opts, threshold, failed, report), indent=2) + "\n")
        elif fmt == Format.sarif:
            write_output(output, json.dumps(to_sarif(df, findings), indent=2) + "\n")
        else:
            if output and output != "-":
                import io

                buf = io.StringIO()
                render_text(console(buf), df, findings, opts, threshold, report)
                write_output(output, buf.getvalue())
            else:
                render_text(console(), df, findings, opts, threshold, report)
        return 1 if failed else 0


def _with_image(df, findings, opts, ref: str, platform: str | None, verify: bool, quiet: bool,
                disabled: Collection[str] = (), source_args: SourceArgs = SOURCE_ARGS):
    from bilge.commands.analyze import progress_reporter
    from bilge.deps import ElfCollector
    from bilge.dockerfile.cost import PackageDBCollector, attach
    from bilge.dockerfile.rules import Analysis
    from bilge.fs import walk_image
    an = Analysis(df, opts)
    with source_args.open(ref, platform=platform, verify=verify, quiet=quiet) as src:
        advance, stop = progress_reporter(src, quiet)
        packages = PackageDBCollector()
        # bilge deps' ELF reader rides along the same pass when a broad COPY --from needs its closure
        elf = (ElfCollector() if "broad-copy-from" not in disabled
               and any(f.rule == "broad-copy-from" for f in findings) else None)
        try:
            fs = walk_image(src, visitors=[packages] + ([elf] if elf is not None else []), progress=advance)
        finally:
            stop()
        return attach(findings, an, src.image, fs, ref, show_secrets=opts.show_secrets, packages=packages, elf=elf)
