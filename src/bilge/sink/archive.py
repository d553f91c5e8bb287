"""Writing and reading back the tar archives of oci-archive and docker-archive."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bilge import cleanup
from bilge.errors import OutputError
from bilge.sink.common import Assembled, BlobDir, OutputSpec, WriteResult, assemble, remove_tree, staging_dir
from bilge.sink.layer import BLOCK, CHUNK, Compression, Member, tar_header


def write_archive(out_path: Path, root: Path, extra: dict[str, bytes], mtime: int) -> None:
    """Tar ``root/blobs`` plus the ``extra`` top-level files (name -> bytes), sorted, normalised."""
    entries: list[tuple[str, Path | bytes | None]] = [("blobs", None), ("blobs/sha256", None)]
    for p in sorted((root / "blobs" / "sha256").iterdir()):
        if not p.name.startswith("."):
            entries.append((f"blobs/sha256/{p.name}", p))
    for name in sorted(extra):
        entries.append((name, extra[name]))
    entries.sort(key=lambda e: e[0])
    with out_path.open("wb") as out:
        for name, body in entries:
            if body is None:
                out.write(tar_header(Member(name, "dir", 0o755, mtime=mtime)))
                continue
            size = len(body) if isinstance(body, bytes) else body.stat().st_size
            out.write(tar_header(Member(name, "file", 0o644, mtime=mtime, size=size)))
            if isinstance(body, bytes):
                out.write(body)
            else:
                with body.open("rb") as fh:
                    copied = 0
                    while chunk := fh.read(CHUNK):
                        out.write(chunk)
                        copied += len(chunk)
                if copied != size:
                    raise OutputError(f"{body}: changed while being archived")
            out.write(b"\0" * (-size % BLOCK))
        out.write(b"\0" * (2 * BLOCK))


class ArchiveReader:
    """Random access to the regular files of a written archive, for verification."""

    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, "r:")
        except tarfile.TarError as exc:
            raise OutputError(f"verification failed: {path} is not a readable tar: {exc}") from None
        self.members = {m.name: m for m in self.tar.getmembers() if m.isfile()}

    def read(self, name: str) -> bytes:
        fh = self.open_member(name)
        with fh:
            return fh.read()

    def open_member(self, name: str) -> Any:
        m = self.members.get(name)
        if m is None:
            raise OutputError(f"verification failed: {name} missing from the archive")
        fh = self.tar.extractfile(m)
        assert fh is not None
        return fh

    def blob_opener(self) -> Callable[[str], Any]:
        return lambda digest: self.open_member("blobs/" + digest.replace(":", "/", 1))

    def close(self) -> None:
        self.tar.close()


def write_image_archive(
    kind: str,
    spec: OutputSpec,
    config: Any,
    layers: Any,
    compression: Compression,
    clamp: int | None,
    on_layer: Callable[..., None] | None,
    extra: Callable[[Assembled], dict[str, bytes]],
    check: Callable[[ArchiveReader, Assembled], None],
) -> WriteResult:
    """Write an image as one tar file, safely: blobs are assembled in a staging directory beside the
    target, packed into a temporary tar with the ``extra`` index files, read back and checked by
    ``check``, and only then renamed onto the target. Nothing is left behind on failure."""
    target = spec.path
    if target.is_dir():
        raise OutputError(f"cannot write {kind}:{target}: it is a directory")
    stage = staging_dir(target)
    tmp = stage.with_name(stage.name + ".tar")
    try:
        a = assemble(BlobDir(stage), config, layers, compression, clamp, on_layer)
        write_archive(tmp, stage, extra(a), clamp or 0)
        reader = ArchiveReader(tmp)
        try:
            check(reader, a)
        finally:
            reader.close()
        cleanup.checkpoint()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        remove_tree(stage)
    return WriteResult(spec, a.manifest_digest, a.config_digest, a.layers, a.config)
