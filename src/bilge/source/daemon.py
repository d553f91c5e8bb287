"""``docker-daemon:NAME[:TAG]`` (or ``docker-daemon:sha256:ID``): an image read from the local Docker
engine through its API (``GET /images/NAME/get``, what ``docker save`` uses).

Why the export is spooled: the engine builds the whole export before it sends a byte, then sends its
members in lexical order -- layer directories (``<v1 id>/layer.tar``) or blobs (``blobs/sha256/<hex>``)
sorted by name, ``manifest.json`` (which says which member is which layer, in which order) last. A
layer therefore usually arrives before the reader can know it is the next one, and the image model
(layer order and sizes) is only known at the end. So each member is written, as it streams by, to its
own file in a private temporary directory (mode 0700, removed when the source closes); memory
stays flat (one 1 MiB chunk) and the disk holds one copy of the image (no tar around it). The layers
are then read from the spool exactly as from a local ``docker save`` archive (digests and diff_ids
verified while streaming). Set ``TMPDIR`` to put the spool on another disk.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import posixpath
from collections.abc import Iterator
from typing import Any

import httpx

from bilge import cleanup
from bilge.errors import BilgeError, ImageFormatError
from bilge.image import Platform
from bilge.layers import ForwardStream
from bilge.rawio import RawReader
from bilge.reference import Reference
from bilge.remote.engine import Engine, EngineError
from bilge.source.base import FetchProgress, SourceOptions
from bilge.source.store import DirStore, norm_member
from bilge.source.stored import StoreSource, read_store
from bilge.tarstream import BodyStream, TarFormatError, iter_members

CHUNK = 1 << 20


def engine_name(ref: Reference) -> str:
    """What to ask the engine for: an image id, or the name as the user wrote it (tag defaults to latest)."""
    if ref.image_id:
        return ref.image_id
    assert ref.name is not None
    n = ref.name
    if n.digest:
        return f"{n.name}@{n.digest}"
    return f"{n.name}:{n.tag or 'latest'}"


class _IterReader(RawReader):
    """A forward-only reader over an HTTP response's chunks, reporting progress."""

    def __init__(self, resp: httpx.Response, what: str, progress: FetchProgress | None) -> None:
        super().__init__()
        self._it: Iterator[bytes] = resp.iter_raw(CHUNK)
        self._buf, self._off = b"", 0
        self._what, self._progress = what, progress

    def read(self, n: int = -1) -> bytes:
        n = CHUNK if n is None or n < 0 else n
        while len(self._buf) - self._off == 0:
            try:
                chunk = next(self._it, b"")
            except httpx.TransportError as exc:
                raise EngineError(f"{self._what}: the engine's export stream broke off "
                                  f"({exc.__class__.__name__})") from None
            if not chunk:
                return b""
            if self._progress is not None:
                self._progress.advance(self._what, len(chunk))
            self._buf, self._off = chunk, 0
        data = self._buf[self._off:self._off + n]
        self._off += len(data)
        return data


class SpoolStore(DirStore):
    """The spooled export; removed from disk when closed."""

    def close(self) -> None:
        cleanup.remove(self.root)


def spool(stream: RawReader, root: str, what: str) -> None:
    """Write every member of the tar ``stream`` under ``root`` (files, links, directories)."""
    fwd = ForwardStream(stream)  # type: ignore[arg-type]
    try:
        for m in iter_members(fwd):  # type: ignore[arg-type]
            name = norm_member(m.name)
            if not name or name.startswith("../") or name == "..":
                raise ImageFormatError(f"{what}: the export holds an unsafe member name {m.name!r}")
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path) or root, mode=0o700, exist_ok=True)
            if m.type in (b"0", b"\0", b"7"):
                body = BodyStream(fwd, m.offset_data, m.size)  # type: ignore[arg-type]
                with open(path, "wb") as fh:
                    while chunk := body.read(CHUNK):
                        fh.write(chunk)
                if os.path.getsize(path) != m.size:
                    raise ImageFormatError(f"{what}: the export ended inside {name}")
            elif m.type == b"2":  # docker save links a repeated layer to its first copy
                target = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
                if target.startswith("../") or target.startswith("/"):
                    raise ImageFormatError(f"{what}: the export's link {name} points outside it")
                os.symlink(m.linkname, path)
            elif m.type == b"1":
                target = norm_member(m.linkname)
                os.link(os.path.join(root, target), path)
            elif m.type == b"5":
                os.makedirs(path, mode=0o700, exist_ok=True)
        fwd.drain()
    except TarFormatError as exc:
        raise ImageFormatError(f"{what}: the engine's export is not a readable tar ({exc})") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise BilgeError(f"{what}: no space left in {os.path.dirname(root)} for the engine's export; "
                             "set TMPDIR to a larger disk") from None
        raise


class DaemonSource(StoreSource):
    """An image exported from the engine, read from its spool."""


def open_source(ref: Reference, want: Platform | None, verify: bool, options: SourceOptions) -> DaemonSource:
    with Engine(options.docker_host) as engine:
        name = engine_name(ref)
        info = engine.inspect(name)
        if info is None:
            raise EngineError(f"{ref}: no such image in the Docker engine at {engine.host}")
        return export_and_open(engine, name, info, ref, want, verify, options)


def export_and_open(engine: Engine, name: str, info: dict[str, Any], ref: Reference, want: Platform | None,
                    verify: bool, options: SourceOptions) -> DaemonSource:
    what = f"{ref}"
    resp = engine.export(str(info.get("Id") or name))
    root = str(cleanup.mkdtemp(cleanup.tempdir(), "bilge-engine-export-"))
    progress = options.progress
    try:
        if progress is not None:
            size = info.get("Size")
            progress.begin(what, f"exporting {name} from the engine", int(size) if isinstance(size, int) else None)
        try:
            spool(_IterReader(resp, what, progress), root, what)
        finally:
            resp.close()
            if progress is not None:
                progress.end(what)
        store = SpoolStore(root)
        local = Reference("docker-archive", path=what, original=what)
        src = read_store(store, local, want, verify, "docker-archive")
        image = dataclasses.replace(src.image, transport="docker-daemon", reference=str(ref))
        return DaemonSource(image, store, src._layer_paths, verify)
    except BaseException:
        cleanup.remove(root)
        raise
