"""Writing and reading back the tar archives of oci-archive and docker-archive."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bilge.errors import OutputError
from bilge.sink.layer import BLOCK, CHUNK, Member, tar_header


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
