"""Build small images in code, for tests (the shape of go-containerregistry's ``random``).

A layer is a list of items:
``("file", path, data[, mode])``, ``("dir", path[, mode])``, ``("symlink", path, target)``,
``("hardlink", path, target)``, ``("whiteout", path)``, ``("opaque", dir)``, ``("raw", TarInfo, data)``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Sequence
from typing import Any

Item = tuple[Any, ...]


def layer_tar(items: Iterable[Item], mtime: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for item in items:
            kind = item[0]
            if kind == "raw":
                info, data = item[1], item[2]
                tf.addfile(info, io.BytesIO(data) if data is not None else None)
                continue
            path = item[1]
            info = tarfile.TarInfo(path)
            info.mtime = mtime
            data = None
            if kind == "file":
                data = item[2] if isinstance(item[2], bytes) else str(item[2]).encode()
                info.size = len(data)
                info.mode = item[3] if len(item) > 3 else 0o644
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = item[2] if len(item) > 2 else 0o755
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = item[2]
                info.mode = 0o777
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = item[2]
                info.mode = 0o644
            elif kind == "whiteout":
                parent, _, name = path.rpartition("/")
                info = tarfile.TarInfo(f"{parent}/.wh.{name}" if parent else f".wh.{name}")
                info.mtime = mtime
            elif kind == "opaque":
                info = tarfile.TarInfo(f"{path.rstrip('/')}/.wh..wh..opq" if path.strip("/") else ".wh..wh..opq")
                info.mtime = mtime
            else:
                raise ValueError(f"unknown item kind {kind!r}")
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def compress(data: bytes, how: str | None) -> bytes:
    if how is None or how == "tar":
        return data
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(how)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_for(layers: Sequence[bytes], history: Sequence[str] | None = None, *, os_: str = "linux",
               arch: str = "amd64", env: Sequence[str] = (), extra: dict[str, Any] | None = None,
               raw_history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    hist = raw_history if raw_history is not None else [
        {"created_by": (history[i] if history and i < len(history) else f"/bin/sh -c step {i}")}
        for i in range(len(layers))
    ]
    cfg: dict[str, Any] = {
        "architecture": arch, "os": os_,
        "config": {"Env": list(env) or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in layers]},
        "history": hist,
    }
    if extra:
        cfg.update(extra)
    return cfg


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def docker_archive(path: str | os.PathLike, layers: Sequence[Sequence[Item] | bytes], *, history: Sequence[str] | None = None,
                   tags: Sequence[str] = ("test/image:latest",), compression: str | None = None,
                   config: dict[str, Any] | None = None, more_images: int = 0) -> dict[str, Any]:
    """Write a legacy ``docker save`` archive; return the config written.

    A layer is a list of items or, for hand-crafted (hostile) tar streams, the layer tar's bytes."""
    tars = [items if isinstance(items, bytes) else layer_tar(items) for items in layers]
    cfg = config or config_for(tars, history)
    cfg_bytes = json.dumps(cfg).encode()
    cfg_name = hashlib.sha256(cfg_bytes).hexdigest() + ".json"
    entries = []
    with tarfile.open(path, "w") as tf:
        names = []
        for i, t in enumerate(tars):
            blob = compress(t, compression)
            name = f"layer{i}/layer.tar"
            _add(tf, name, blob)
            names.append(name)
        _add(tf, cfg_name, cfg_bytes)
        entries.append({"Config": cfg_name, "RepoTags": list(tags), "Layers": names})
        for n in range(more_images):
            entries.append({"Config": cfg_name, "RepoTags": [f"other/image{n}:latest"], "Layers": names})
        _add(tf, "manifest.json", json.dumps(entries).encode())
    return cfg


def oci_layout(path: str | os.PathLike, images: Sequence[dict[str, Any]], *, archive: bool = True,
               index_extra: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Write an OCI layout (a tar when ``archive``, else a directory).

    Each image dict: ``layers`` (list of item lists), optional ``compression``, ``platform`` ("os/arch"),
    ``ref`` (ref.name annotation), ``history``. Returns {ref or platform: manifest digest}.
    Images sharing a ``group`` are put in one nested index.
    """
    blobs: dict[str, bytes] = {}
    top: list[dict[str, Any]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    digests: dict[str, str] = {}

    def put(data: bytes) -> str:
        d = sha256(data)
        blobs[d] = data
        return d

    for spec in images:
        how = spec.get("compression", "gzip")
        tars = [layer_tar(items) for items in spec["layers"]]
        os_, arch = (spec.get("platform") or "linux/amd64").split("/")[:2]
        cfg = json.dumps(config_for(tars, spec.get("history"), os_=os_, arch=arch)).encode()
        mt = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip", "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
              None: "application/vnd.oci.image.layer.v1.tar", "tar": "application/vnd.oci.image.layer.v1.tar"}[how]
        layer_descs = []
        for t in tars:
            blob = compress(t, how)
            layer_descs.append({"mediaType": mt, "digest": put(blob), "size": len(blob)})
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg),
                               "size": len(cfg)},
                    "layers": layer_descs}
        mbytes = json.dumps(manifest).encode()
        desc: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(mbytes),
                                "size": len(mbytes), "platform": {"os": os_, "architecture": arch}}
        digests[spec.get("ref") or f"{os_}/{arch}"] = desc["digest"]
        if spec.get("group"):
            groups.setdefault(spec["group"], []).append(desc)
            continue
        if spec.get("ref"):
            desc["annotations"] = {"org.opencontainers.image.ref.name": spec["ref"]}
        top.append(desc)
    for name, descs in groups.items():
        idx = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                          "manifests": descs}).encode()
        top.append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": put(idx), "size": len(idx),
                    "annotations": {"org.opencontainers.image.ref.name": name}})
        digests[name] = sha256(idx)
    top.extend(index_extra or [])
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": top}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    files.update({f"blobs/sha256/{d.split(':')[1]}": b for d, b in blobs.items()})
    if archive:
        with tarfile.open(path, "w") as tf:
            for name, data in files.items():
                _add(tf, name, data)
    else:
        for name, data in files.items():
            full = os.path.join(path, name)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as fh:
                fh.write(data)
    return digests
