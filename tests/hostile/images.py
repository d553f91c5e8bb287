"""Tiny images whose JSON documents a test (or a fuzzer) sets to anything: ``docker save`` tars and OCI
layouts written from dicts, with a digest-correct chain of blobs whatever the documents hold."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from bilge.testing import layer_tar

LAYER = layer_tar([("file", "etc/app.conf", b"TOKEN=ghp_" + b"a" * 36 + b"\n"), ("dir", "usr")])
DIFF_ID = "sha256:" + hashlib.sha256(LAYER).hexdigest()


def base_config() -> dict[str, Any]:
    return {"architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/bin", "A=b"], "Cmd": ["/bin/sh"], "Labels": {"k": "v"}},
            "rootfs": {"type": "layers", "diff_ids": [DIFF_ID]},
            "history": [{"created_by": "COPY . /", "created": "2024-01-01T00:00:00Z"}]}


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _dump(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def docker_save(path: Path, *, config: Any = None, manifest: Any = None) -> None:
    """``manifest``: the whole manifest.json (a callable gets the valid one and returns it)."""
    cfg_bytes = _dump(base_config() if config is None else config)
    cfg_name = hashlib.sha256(cfg_bytes).hexdigest() + ".json"
    valid = [{"Config": cfg_name, "RepoTags": ["t/app:1"], "Layers": ["l0/layer.tar"]}]
    doc = manifest(valid) if callable(manifest) else (valid if manifest is None else manifest)
    with tarfile.open(path, "w") as tf:
        for name, data in (("l0/layer.tar", LAYER), (cfg_name, cfg_bytes), ("manifest.json", _dump(doc))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def oci_layout(root: Path, *, config: Any = None, manifest=None, index=None) -> None:
    """An OCI layout directory; ``manifest``/``index`` callables get the valid document and return one."""
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        d, b = _blob(data)
        blobs[d] = b
        return d

    layer_d = put(LAYER)
    cfg_bytes = _dump(base_config() if config is None else config)
    cfg_d = put(cfg_bytes)
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": len(cfg_bytes)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d, "size": len(LAYER)}]}
    if manifest is not None:
        man = manifest(man)
    man_bytes = _dump(man)
    man_d = put(man_bytes)
    idx = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_d, "size": len(man_bytes),
         "annotations": {"org.opencontainers.image.ref.name": "1"}}]}
    if index is not None:
        idx = index(idx)
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_bytes(_dump(idx))
    os.makedirs(root / "blobs" / "sha256", exist_ok=True)
    for d, data in blobs.items():
        (root / "blobs" / "sha256" / d.split(":", 1)[1]).write_bytes(data)


def set_path(doc: Any, path: tuple, value: Any) -> Any:
    """``doc`` with the field at ``path`` (keys and list indexes) set to ``value``."""
    doc = json.loads(json.dumps(doc))
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc
