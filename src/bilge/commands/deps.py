"""`bilge deps REF`: the exact shared-library closure of programs, read from the image itself.

Its renderers (text, json, dockerfile, list) are in :mod:`bilge.format.deps`.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Any

import typer

from bilge.commands._sourceopts import SOURCE_ARGS, SourceArgs, with_source_options
from bilge.errors import BilgeError
from bilge.format.deps import LinkMode, render_text, to_dockerfile, to_json, to_list
from bilge.format.interface import document


class Format(StrEnum):
    text = "text"
    json = "json"
    dockerfile = "dockerfile"
    list = "list"


def register(app: typer.Typer) -> None:
    @app.command("deps")
    @with_source_options
    def deps_cmd(
        reference: str = typer.Argument(None, metavar="REF",
                                        help="Image: docker-archive:PATH, oci:DIR[:TAG], oci-archive:PATH[:TAG], "
                                             "or a path (sniffed)."),
        binary: list[str] = typer.Option([], "--binary", "-b", help="A program or library in the image (repeatable)."),
        path: list[str] = typer.Option([], "--path", "-p", help="Every ELF file under this image directory "
                                                                "(repeatable)."),
        entrypoint: bool = typer.Option(False, "--entrypoint", help="The image's Entrypoint/Cmd, through PATH, "
                                                                    "symlinks and #! interpreters."),
        strict: bool = typer.Option(False, "--strict", help="Only what the loader maps; leave out NSS/gconv/"
                                                            "libgcc_s and other dlopen'ed files."),
        fmt: Format = typer.Option(Format.text, "--format", "-f", help="text, json, dockerfile or list."),
        stage: str = typer.Option(None, "--from", help="Build stage name for --format dockerfile."),
        links: LinkMode = typer.Option(LinkMode.stage, "--links",
                                       help="dockerfile: keep symlinks by gathering files in a helper stage "
                                            "(stage, works for scratch) or by RUN ln -s in the final stage (run)."),
        rootfs: str = typer.Option(None, "--rootfs", help="Read an unpacked root filesystem directory instead "
                                                          "of an image."),
        platform: str = typer.Option(None, "--platform", help="OS/ARCH or OS/ARCH/VARIANT for multi-platform images."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip digest and diff_id verification."),
        source_args: SourceArgs = SOURCE_ARGS,
    ) -> int:
        """The exact shared libraries (and their symlinks) programs in an image need, resolved like its loader."""
        from bilge.deps import DirView, closure, image_view
        from bilge.format.common import console

        if fmt == Format.dockerfile and not stage:
            raise BilgeError("--format dockerfile needs --from STAGE (the build stage to copy from)")
        if not (binary or path or entrypoint):
            raise BilgeError("nothing to resolve: give --binary PATH, --path DIR or --entrypoint")
        image_info: dict[str, Any] | None = None
        if rootfs:
            if reference:
                raise BilgeError("give either REF or --rootfs, not both")
            if entrypoint:
                raise BilgeError("--entrypoint needs an image (its config holds Entrypoint and Cmd)")
            result = closure(DirView(rootfs), binaries=binary, paths=path, strict=strict)
            label = rootfs
        else:
            if not reference:
                raise BilgeError("missing REF (an image) or --rootfs DIR")
            from bilge.commands._common import progress_reporter

            with source_args.open(reference, platform=platform, verify=not no_verify,
                                  quiet=fmt != Format.text) as src:
                advance, stop = progress_reporter(src, fmt != Format.text)
                try:
                    view, _collector = image_view(src, progress=advance)
                finally:
                    stop()
                image = src.image
                image_info = {"reference": image.reference, "image_id": image.image_id,
                              "platform": str(image.platform) if image.platform else None}
                result = closure(view, binaries=binary, paths=path, entrypoint=entrypoint,
                                 config=image.container_config, strict=strict)
            label = reference
        if fmt == Format.json:
            sys.stdout.write(document(to_json(result, image_info)))
        elif fmt == Format.list:
            sys.stdout.write("".join(p + "\n" for p in to_list(result)))
        elif fmt == Format.dockerfile:
            what = ", ".join(r.path for r in result.roots[:5]) + (" ..." if len(result.roots) > 5 else "")
            sys.stdout.write("\n".join(to_dockerfile(result, stage, links, what)) + "\n")
            for m in result.missing:
                sys.stderr.write(f"bilge: missing {m.soname} (needed by {', '.join(m.needed_by)})\n")
        else:
            render_text(console(), result, reference=label)
        return 1 if result.missing else 0
