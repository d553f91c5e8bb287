"""`bilge report REF -o report.html`: one self-contained HTML picture of an image.

One read of the image serves every section: the walk that builds the merged filesystem carries the
secrets scanner, and (when asked for) the package-database and ELF collectors of ``lint --image`` and
``deps``. Exit codes: 0 written, 2 bad input (nothing written).
"""

from __future__ import annotations

import gc
import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from bilge.commands._common import write_output
from bilge.commands._sourceopts import SOURCE_ARGS, SourceArgs, with_source_options
from bilge.errors import BilgeError, OutputError
from bilge.image import Platform


class Format(StrEnum):
    html = "html"
    json = "json"




def _check_output(path: str) -> None:
    if path == "-":
        return
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise OutputError(f"cannot write {path}: directory {directory} does not exist")
    if target.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    if not os.access(directory, os.W_OK):
        raise OutputError(f"cannot write {path}: directory {directory} is not writable")


def _lint_setup(dockerfile: str, context: str | None, target: str | None, config: str | None, show_secrets: bool):
    """The Dockerfile side of ``bilge lint --image``, with the same config handling."""
    from bilge.commands.lint import _check_rules, _check_severity, _settings
    from bilge.config import load_config
    from bilge.dockerfile import dockerignore
    from bilge.dockerfile.parse import parse_file
    from bilge.dockerfile.rules import LintOptions, lint

    if not Path(dockerfile).is_file():
        raise BilgeError(f"Dockerfile not found: {dockerfile}")
    df = parse_file(dockerfile)
    settings = _settings(load_config(config, start=Path(dockerfile).resolve().parent))
    where = "[tool.bilge.lint]"
    disabled = _check_rules(settings.get("disable", []) or [], f"{where} disable")
    sev_over = settings.get("severity", {}) or {}
    if not isinstance(sev_over, dict):
        raise BilgeError(f"{where} severity must be a table of rule = severity")
    _check_rules(sev_over.keys(), f"{where} severity")
    sev_over = {k: _check_severity(v, f"{where} severity.{k}") for k, v in sev_over.items()}
    threshold = _check_severity(settings.get("fail-on", settings.get("fail_on", "low")), f"{where} fail-on",
                                allow_never=True)
    ctx_dir = context or settings.get("context") or str(Path(dockerfile).resolve().parent)
    if not Path(ctx_dir).is_dir():
        raise BilgeError(f"build context is not a directory: {ctx_dir}")
    opts = LintOptions(
        target=target or settings.get("target"), context=ctx_dir,
        dockerignore=dockerignore.find(ctx_dir, dockerfile),
        secret_names=tuple(settings.get("secret-names", settings.get("secret_names", [])) or ()),
        allow_names=tuple(settings.get("allow-names", settings.get("allow_names", [])) or ()),
        show_secrets=show_secrets,
    )
    df.target(opts.target)
    return df, lint(df, opts), opts, set(disabled), sev_over, threshold


def register(app: typer.Typer) -> None:
    @app.command("report")
    @with_source_options
    def report_cmd(
        reference: str = typer.Argument(None, metavar="[REF]",
                                        help="Image: docker-archive:PATH, oci:DIR[:TAG], oci-archive:PATH[:TAG], "
                                             "docker://..., docker-daemon:..., or a path. Default: the demo image."),
        output: str = typer.Option(..., "--output", "-o", metavar="FILE",
                                   help="Write the report to FILE (atomically; '-' for stdout)."),
        fmt: Format = typer.Option(Format.html, "--format", "-f",
                                   help="html (one self-contained file) or json (the data behind it)."),
        dockerfile: str = typer.Option(None, "--dockerfile", "-d", metavar="PATH",
                                       help="The Dockerfile the image was built from: adds the lint --image section."),
        context: str = typer.Option(None, "--context", "-c", metavar="DIR",
                                    help="Build context of --dockerfile (default: its directory)."),
        target: str = typer.Option(None, "--target", "-t", help="The --dockerfile stage that was built."),
        binary: list[str] = typer.Option([], "--binary", "-b", help="deps section: a program or library in the "
                                                                    "image (repeatable)."),
        path: list[str] = typer.Option([], "--path", "-p", help="deps section: every ELF file under this image "
                                                                "directory (repeatable)."),
        entrypoint: bool = typer.Option(False, "--entrypoint", help="deps section: the image's Entrypoint/Cmd."),
        strict: bool = typer.Option(False, "--strict", help="deps section: only what the loader maps."),
        show_secrets: bool = typer.Option(False, "--show-secrets", help="Show secret values in full (never for a "
                                                                        "report you publish)."),
        severity: str = typer.Option("high", "--severity", "-s", help="Secrets threshold counted in the summary."),
        base: str = typer.Option(None, "--base", help="Base image: its layers (by diff_id) are marked as base."),
        platform: str = typer.Option(None, "--platform", help="os/arch or os/arch/variant, for multi-platform images."),
        config: str = typer.Option(None, "--config", help="bilge config file (default: nearest .bilge.toml or "
                                                          "pyproject.toml [tool.bilge])."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip digest and diff_id verification."),
        demo: bool = typer.Option(False, "--demo", help="Report on the demo image shipped with bilge."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
        source_args: SourceArgs = SOURCE_ARGS,
    ) -> int:
        """One self-contained HTML file: a treemap of the bytes by layer, dead weight, secrets, lint and deps."""
        from bilge import __version__
        from bilge.analyze import analyze
        from bilge.commands._common import demo_image_path, progress_reporter
        from bilge.commands.secrets import _secrets_config
        from bilge.forked import beside
        from bilge.format.html import ReportInput
        from bilge.fs import walk_image
        from bilge.secrets import build_report, scan_image_config, sort_findings
        from bilge.secrets.ignore import from_config, read_bilgeignore
        from bilge.secrets.model import ScanStats
        from bilge.secrets.rules import SEVERITIES, load_ruleset
        from bilge.secrets.scanner import file_findings
        from bilge.secrets.textscan import Scanner

        started = time.monotonic()
        sev = severity.strip().lower()
        if sev not in SEVERITIES:
            raise BilgeError(f"--severity {severity!r}: one of {', '.join(SEVERITIES)}")
        _check_output(output)
        ref = demo_image_path() if (demo or not reference) else reference
        # everything that can be wrong with the other inputs fails before the (long) image read
        section, cdir, csource = _secrets_config(config)
        ruleset = load_ruleset(section, cdir)
        ignores = from_config(section.get("ignore"), csource or "config")
        if Path(".bilgeignore").is_file():
            ignores += read_bilgeignore(Path(".bilgeignore"))
        lint_setup = _lint_setup(dockerfile, context, target, config, show_secrets) if dockerfile else None
        want_deps = bool(binary or path or entrypoint)
        plat = Platform.parse(platform) if platform else None
        base_diff_ids = None
        if base:
            with source_args.open(base, platform=plat, verify=False, quiet=True) as bsrc:
                base_diff_ids = [layer.diff_id or "" for layer in bsrc.image.layers]

        lint_doc = deps_result = None
        with source_args.open(ref, platform=plat, verify=not no_verify, quiet=quiet) as src:
            image = src.image
            scanner = Scanner(ruleset)
            stats = ScanStats()
            findings = scan_image_config(image, scanner, stats)
            visitor, packages, elf, want_elf = _visitors(scanner, stats, section, lint_setup, want_deps)
            visitors = [v for v in (visitor, packages, elf) if v is not None]  # the ELF reader last
            advance, stop = progress_reporter(src, quiet or output == "-")
            # The objects alive now (modules, rules) and, after the walk, the merged filesystem live until
            # the process ends: frozen, the collector's full passes stop rescanning them (~0.1-0.2 s).
            gc.freeze()
            try:
                fs = walk_image(src, visitors=visitors, progress=advance)
            finally:
                stop()
            gc.freeze()
            # What is left is Python work on one core: the size tree and the page template's compile are
            # made on the other, in a forked child that reads the merged filesystem copy-on-write
            # (bilge.forked), while this process makes the rest.
            with beside(_tree_and_page, fs, fmt == Format.html) as job:
                stats.layers = max(stats.layers, len(image.layers))
                findings = sort_findings(findings + file_findings(visitor.hits, fs.version_at))
                secrets_report = build_report(image, findings, stats, threshold=sev, ignores=ignores)
                result = analyze(image, fs, base_diff_ids=base_diff_ids)
                if lint_setup is not None:
                    lint_doc = _lint_doc(lint_setup, image, fs, ref, show_secrets, packages,
                                         elf if want_elf else None)
                if want_deps:
                    from bilge.deps import closure

                    assert elf is not None
                    deps_result = closure(elf.view(fs), binaries=binary, paths=path, entrypoint=entrypoint,
                                          config=image.container_config, strict=strict)
                if fmt == Format.html:
                    import jinja2  # noqa: F401  (its import, while the child may still be at work)
                tree, compiled = job.result()

        inp = ReportInput(analysis=result, tree=tree, secrets=secrets_report, lint=lint_doc, deps=deps_result,
                          show_secrets=show_secrets, version=__version__)
        _emit(inp, fmt, output, quiet, started, compiled)
        return 0


def _tree_and_page(fs, html: bool):
    """What the forked child makes: the size tree and, for the HTML, the compiled page template."""
    from bilge.format.html import compile_template
    from bilge.fstree import build_tree

    return build_tree(fs), (compile_template() if html else None)


def _visitors(scanner, stats, section: dict[str, Any], lint_setup, want_deps: bool):
    """The walk's visitors: the secrets scanner; lint's package-database reader with a Dockerfile; the
    deps ELF reader for the deps section, or when a broad COPY --from needs its closure (as in lint)."""
    from bilge.secrets.scanner import FileVisitor

    visitor = FileVisitor(scanner, stats, scan_binaries=bool(section.get("scan_binaries", False)))
    packages = elf = None
    want_elf = False
    if lint_setup is not None:
        from bilge.dockerfile.cost import PackageDBCollector

        packages = PackageDBCollector()
        want_elf = "broad-copy-from" not in lint_setup[3] and any(f.rule == "broad-copy-from" for f in lint_setup[1])
    if want_deps or want_elf:
        from bilge.deps import ElfCollector

        elf = ElfCollector()
    return visitor, packages, elf, want_elf


def _lint_doc(lint_setup, image, fs, ref: str, show_secrets: bool, packages, elf) -> dict[str, Any]:
    """``bilge lint --image``'s JSON document, from the same pass over the image."""
    from bilge.dockerfile.cost import attach
    from bilge.dockerfile.rules import Analysis as LintAnalysis
    from bilge.dockerfile.rules import apply_config, severity_rank
    from bilge.format.lint import to_json as lint_json

    df, lfindings, opts, disabled, sev_over, threshold = lint_setup
    lfindings, lreport = attach(lfindings, LintAnalysis(df, opts), image, fs, ref,
                                show_secrets=show_secrets, packages=packages, elf=elf)
    lfindings = apply_config(lfindings, disabled, sev_over)
    failed = threshold != "never" and any(severity_rank(f.severity) >= severity_rank(threshold)
                                          for f in lfindings)
    return lint_json(df, lfindings, opts, threshold, failed, lreport)


def _emit(inp, fmt: Format, output: str, quiet: bool, started: float, compiled: bytes | None = None) -> None:
    """Write the report (HTML or JSON) and, unless quiet or on stdout, one summary line on stderr."""
    from bilge.format.html import render_html, report_document
    from bilge.format.interface import document
    from bilge.units import human_bytes

    doc = report_document(inp)
    text = document(doc, ascii_only=False) if fmt == Format.json else render_html(inp, doc, compiled)
    write_output(output, text)
    if not quiet and output != "-":
        s = inp.analysis.summary
        sys.stderr.write(f"bilge: wrote {output} ({human_bytes(len(text.encode()))}) in "
                         f"{time.monotonic() - started:.1f}s: {human_bytes(s.visible_bytes)} visible, "
                         f"{human_bytes(s.reclaimable_bytes)} dead weight, "
                         f"{len(inp.secrets.findings)} secret finding(s)\n")
