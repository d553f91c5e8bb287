"""`bilge diff A B`: what really changed between two images, by content, without mtime noise."""

from __future__ import annotations

import sys

import typer

from bilge.commands._common import TextOrJson as Format
from bilge.commands._sourceopts import SOURCE_ARGS, SourceArgs, with_source_options


def register(app: typer.Typer) -> None:
    @app.command("diff")
    @with_source_options
    def diff_cmd(
        a: str = typer.Argument(..., metavar="A", help="The first image: docker://, docker-daemon:, docker-archive:, "
                                                       "oci:, oci-archive: or a path (sniffed)."),
        b: str = typer.Argument(..., metavar="B", help="The second image, any reference (formats may differ)."),
        platform: str = typer.Option(None, "--platform", help="os/arch or os/arch/variant, for multi-platform images."),
        fmt: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
        ignore: list[str] = typer.Option(None, "--ignore", metavar="PATTERN",
                                         help="Leave out paths matching PATTERN (repeatable): with a / it is "
                                              "anchored at the root (/var/cache/*), without one it matches any "
                                              "name (*.pyc); a match takes its subtree."),
        mtime: bool = typer.Option(False, "--mtime", help="Compare modification times too (off: rebuilds and "
                                                          "re-compression change them everywhere)."),
        depth: int = typer.Option(2, "--depth", min=1, help="Directory depth for grouping changes."),
        top: int = typer.Option(10, "--top", min=1, help="Rows per table (text)."),
        exit_code: bool = typer.Option(False, "--exit-code", help="Exit 1 when the filesystems or configs differ "
                                                                  "(like git diff --exit-code)."),
        show_secrets: bool = typer.Option(False, "--show-secrets", help="Print secrets in config values and "
                                                                        "history unmasked."),
        no_history: bool = typer.Option(False, "--no-history", help="Text: leave out the histories."),
        jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=2, help="Read the two images side by side (2) "
                                                                       "or one after the other (1)."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip digest and diff_id verification."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No output; with --exit-code, only the status."),
        source_args: SourceArgs = SOURCE_ARGS,
    ) -> int:
        """What changed between two images: files by content (added, removed, modified), sizes, config, history."""
        from bilge.commands._common import progress_reporter
        from bilge.diff import diff_sides, read_pair
        from bilge.diffread import read_bytes
        from bilge.format.common import console
        from bilge.format.diff import render_text, to_json, write_json
        from bilge.redact import redact

        verify = not no_verify
        with source_args.open(a, platform=platform, verify=verify, quiet=True) as src_a, \
                source_args.open(b, platform=platform, verify=verify, quiet=True) as src_b:
            advance, stop = progress_reporter(src_a, quiet or fmt == Format.json, also=src_b,
                                              total=read_bytes(src_a.image, src_b.image))
            try:
                side_a, side_b = read_pair(src_a, src_b, verify=verify, jobs=jobs,
                                           progress=(lambda n: advance(None, n)) if advance else None)
            finally:
                stop()
        result = diff_sides(side_a, side_b, ignore=ignore or (), mtime=mtime, depth=depth,
                            mask=(lambda s: s) if show_secrets else redact)
        if quiet:
            pass
        elif fmt == Format.json:
            write_json(to_json(result), sys.stdout)
            sys.stdout.write("\n")
        else:
            render_text(console(), result, top=top, history=not no_history)
        return 1 if exit_code and result.differs else 0
