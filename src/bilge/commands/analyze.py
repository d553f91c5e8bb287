"""`bilge analyze REF`: where every byte goes, which are dead weight, and what to do about it."""

from __future__ import annotations

import sys

import typer

from bilge.commands._common import TextOrJson as Format
from bilge.commands._common import demo_image_path, progress_reporter
from bilge.commands._sourceopts import SOURCE_ARGS, SourceArgs, with_source_options


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    @with_source_options
    def analyze_cmd(
        reference: str = typer.Argument(None, metavar="[REF]",
                                        help="Image: docker-archive:PATH[:TAG|:@N], oci:DIR[:TAG], "
                                             "oci-archive:PATH[:TAG], or a path (sniffed). Default: the demo image."),
        demo: bool = typer.Option(False, "--demo", help="Analyse the demo image shipped with bilge."),
        platform: str = typer.Option(None, "--platform", help="os/arch or os/arch/variant, for multi-platform images."),
        fmt: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
        base: str = typer.Option(None, "--base", help="Base image: its layers (by diff_id) are marked as base."),
        depth: int = typer.Option(2, "--depth", min=1, help="Directory depth for the largest-directories table."),
        top: int = typer.Option(10, "--top", min=1, help="Rows per table."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip digest and diff_id verification."),
        ci: bool = typer.Option(None, "--ci/--no-ci", help="Evaluate CI rules; exit 1 when one fails "
                                                           "(default: on when CI=true)."),
        ci_config: str = typer.Option(None, "--ci-config", help="dive-style rules file (default: ./.dive-ci)."),
        config: str = typer.Option(None, "--config", help="bilge config file (default: nearest .bilge.toml "
                                                          "or pyproject.toml [tool.bilge])."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Text: print only the CI verdict and errors."),
        source_args: SourceArgs = SOURCE_ARGS,
    ) -> int:
        """Where every byte of an image goes, which bytes are dead weight, and which instruction wrote and hid them."""
        from bilge.analyze import analyze
        from bilge.ci import ci_enabled, evaluate, load_rules
        from bilge.config import load_config
        from bilge.format.analyze import render_ci, render_text, to_json
        from bilge.format.common import console
        from bilge.format.interface import document
        from bilge.fs import walk_image
        ref = demo_image_path() if (demo or not reference) else reference
        base_diff_ids = None
        if base:
            with source_args.open(base, platform=platform, verify=False, quiet=quiet) as bsrc:
                base_diff_ids = [layer.diff_id or "" for layer in bsrc.image.layers]
        gate = ci_enabled(ci)
        rules = source = None
        if gate:  # read the rules before the (long) image read: a bad rules file fails fast
            rules, source = load_rules(ci_config, load_config(config))
        with source_args.open(ref, platform=platform, verify=not no_verify, quiet=quiet) as src:
            advance, stop = progress_reporter(src, quiet or fmt == Format.json)
            try:
                fs = walk_image(src, progress=advance)
            finally:
                stop()
            result = analyze(src.image, fs, base_diff_ids=base_diff_ids, depth=depth, top_dirs=max(top, 20))
        verdicts = evaluate(result, rules, source) if gate and rules is not None else None
        failed = [v for v in verdicts or [] if v.status == "fail"]
        if fmt == Format.json:
            sys.stdout.write(document(to_json(result, [v.as_dict() for v in verdicts] if verdicts is not None
                                              else None)))
        else:
            out = console()
            if not quiet:
                render_text(out, result, top=top)
            if verdicts is not None:
                render_ci(out, verdicts, failed=bool(failed))
        return 1 if failed else 0

