"""`bilge squash` (and, as they land, `bilge scrub` / `bilge slim`): write a smaller, cleaner image."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum

import typer

from bilge.errors import BilgeError


class Format(StrEnum):
    text = "text"
    json = "json"


class CompressionKind(StrEnum):
    gzip = "gzip"
    zstd = "zstd"
    none = "none"


OUTPUT_HELP = ("Where to write: oci:DIR[:TAG], oci-archive:PATH[:TAG] or docker-archive:PATH[:NAME:TAG] "
               "(the last is what `docker load` reads).")
LEVEL_HELP = ("Compression level. gzip: 1-3 use ISA-L (fast), 4-9 use zlib (smaller, slower); default 3. "
              "zstd: 1-22, default 3.")


def _compression(kind: CompressionKind, level: int | None):
    from bilge.sink import Compression

    return Compression(kind.value, level)


def _warn(message: str) -> None:
    sys.stderr.write(f"bilge: warning: {message}\n")


def _check_output_compat(output: str, kind: CompressionKind) -> None:
    if output.startswith("docker-archive:") and kind is CompressionKind.zstd:
        _warn("docker load of Docker Engine 20.10 cannot read zstd layers; newer engines can. "
              "Use --compression gzip for older engines.")


def render_squash_text(res, elapsed: float) -> None:
    from bilge.format.common import console, human_bytes

    con = console()
    first, last = res.squashed_layers[0], res.squashed_layers[-1]
    span = f"layers {first}-{last}" if last > first else f"layer {first}"
    con.print(f"squashed {span} of {res.reference} into one layer", soft_wrap=True, markup=False)
    con.print(f"  output  {res.output.output}", soft_wrap=True, markup=False)
    for rec in res.output.layers:
        if rec.copied:
            con.print(f"  kept   {rec.digest[:19]}  {human_bytes(rec.size):>9}  (base layer, byte for byte)")
        else:
            c = res.counts
            con.print(f"  wrote  {rec.digest[:19]}  {human_bytes(rec.size):>9}  "
                      f"{c.files} files, {c.dirs} dirs, {c.symlinks} symlinks, {c.hardlinks} hardlinks"
                      + (f", {c.whiteouts} whiteouts" if c.whiteouts else ""))
    con.print(f"  dropped {human_bytes(res.bytes_saved)} of hidden files (uncompressed; analyze's reclaimable "
              f"bytes for {span})")
    con.print(f"  layers  {res.layers_in} -> {len(res.output.layers)};  stored {human_bytes(res.input_bytes)} -> "
              f"{human_bytes(res.output_bytes)};  {elapsed:.1f}s")
    con.print(f"  image   {res.output.config_digest}")
    for line in res.dropped:
        _warn(f"not written: {line}")
    for line in res.findings:
        _warn(line)


def register(app: typer.Typer) -> None:
    @app.command("squash")
    def squash_cmd(
        reference: str = typer.Argument(..., metavar="REF",
                                        help="Image: docker-archive:PATH[:TAG|:@N], oci:DIR[:TAG], "
                                             "oci-archive:PATH[:TAG], or a path (sniffed)."),
        output: str = typer.Option(..., "--output", "-o", help=OUTPUT_HELP),
        from_layer: int = typer.Option(None, "--from-layer", min=0,
                                       help="Keep layers 0..N-1 untouched; squash N..last into one."),
        base: str = typer.Option(None, "--base",
                                 help="Keep the layers of this base image untouched; squash the rest."),
        compression: CompressionKind = typer.Option(CompressionKind.gzip, "--compression",
                                                    help="Layer compression."),
        level: int = typer.Option(None, "--level", help=LEVEL_HELP),
        platform: str = typer.Option(None, "--platform", help="os/arch[/variant] for multi-platform images."),
        fmt: Format = typer.Option(Format.text, "--format", "-f", help="Report format."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip digest verification of the input."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No report, no progress."),
    ) -> None:
        """Merge layers into one that holds only what is visible; report the bytes dropped.

        Output is reproducible: the same input and options give the same bytes (mtimes clamped to
        SOURCE_DATE_EPOCH when it is set). See docs/rewrite.md.
        """
        from bilge.commands.analyze import progress_reporter
        from bilge.rewrite import squash
        from bilge.sink import parse_output, source_date_epoch
        from bilge.source import open_image

        spec = parse_output(output)
        comp = _compression(compression, level)
        _check_output_compat(output, compression)
        clamp = source_date_epoch()
        started = time.perf_counter()
        base_image = None
        if base:
            with open_image(base, platform=platform, verify=False) as bsrc:
                base_image = bsrc.image
        with open_image(reference, platform=platform, verify=not no_verify) as src:
            advance, stop = progress_reporter(src, quiet or fmt is Format.json)
            try:
                res = squash(src, spec, from_layer=from_layer, base=base_image, compression=comp, clamp=clamp,
                             progress=advance, command=_command_line("squash", from_layer, base))
            finally:
                stop()
        elapsed = time.perf_counter() - started
        if fmt is Format.json:
            doc = res.to_json()
            doc["seconds"] = round(elapsed, 3)
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        elif not quiet:
            render_squash_text(res, elapsed)


def _command_line(name: str, from_layer: int | None, base: str | None) -> str:
    parts = [f"bilge {name}"]
    if from_layer:
        parts.append(f"--from-layer {from_layer}")
    if base:
        parts.append("--base <image>")
    return " ".join(parts)


__all__ = ["register", "BilgeError"]
