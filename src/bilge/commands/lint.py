"""`bilge lint [DOCKERFILE] [--image REF]`: Dockerfile mistakes that cost size or leak secrets, with their bytes."""

from __future__ import annotations

import sys
from collections.abc import Collection
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from bilge.commands._common import write_output
from bilge.commands._sourceopts import SOURCE_ARGS, SourceArgs, with_source_options
from bilge.errors import BilgeError
from bilge.format.interface import document
from bilge.format.lint import render_text, to_json, to_sarif

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
        from bilge.dockerfile.parse import parse_file, parse_text
        from bilge.dockerfile.reading import decode, read_bounded
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
            write_output(output, document(to_json(df, findings, opts, threshold, failed, report)))
        elif fmt == Format.sarif:
            write_output(output, document(to_sarif(df, findings)))
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
    from bilge.commands._common import progress_reporter
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
