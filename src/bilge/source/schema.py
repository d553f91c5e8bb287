"""The JSON documents of an image, checked against their schemas once, where they are read.

``docker save``'s ``manifest.json``, OCI/Docker indexes and manifests, descriptors and the image config
come from whoever built the image. Each reader calls the checker for what it parsed; afterwards every
field bilge uses has the type the specification gives it, so nothing downstream meets a number where
it expects a list. A wrong type is an :class:`ImageFormatError` naming the document and the field
(exit 2). ``null`` is accepted wherever the field is optional, as Go's decoder (Docker, containerd)
accepts it; fields bilge does not use are not checked. Hand-written: the schemas are small, the
checks run once per document, and no dependency is needed for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bilge.errors import ImageFormatError


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _fail(where: str, field: str, want: str, value: Any) -> ImageFormatError:
    return ImageFormatError(f"{where}: {field} must be {want}, not {_kind(value)}")


def _str(doc: dict, key: str, where: str, path: str) -> None:
    v = doc.get(key)
    if v is not None and not isinstance(v, str):
        raise _fail(where, f"{path}{key}", "a string", v)


def _bool(doc: dict, key: str, where: str, path: str) -> None:
    v = doc.get(key)
    if v is not None and not isinstance(v, bool):
        raise _fail(where, f"{path}{key}", "true or false", v)


def _obj(doc: dict, key: str, where: str, path: str) -> dict | None:
    v = doc.get(key)
    if v is not None and not isinstance(v, dict):
        raise _fail(where, f"{path}{key}", "an object", v)
    return v


def _str_list(doc: dict, key: str, where: str, path: str) -> None:
    v = doc.get(key)
    if v is None:
        return
    if not isinstance(v, list):
        raise _fail(where, f"{path}{key}", "a list of strings", v)
    for i, item in enumerate(v):
        if not isinstance(item, str):
            raise _fail(where, f"{path}{key}[{i}]", "a string", item)


def _str_map(doc: dict, key: str, where: str, path: str) -> None:
    v = _obj(doc, key, where, path)
    for k, item in (v or {}).items():
        if not isinstance(item, str):
            raise _fail(where, f"{path}{key}[{k!r:.60}]", "a string", item)


def _list_of(doc: dict, key: str, where: str, path: str, check: Callable[[Any, str, str], None]) -> None:
    v = doc.get(key)
    if v is None:
        return
    if not isinstance(v, list):
        raise _fail(where, f"{path}{key}", "a list", v)
    for i, item in enumerate(v):
        check(item, where, f"{path}{key}[{i}]")


def descriptor(obj: Any, where: str, path: str = "descriptor") -> None:
    """An OCI content descriptor: mediaType, digest, size, annotations, platform, urls."""
    if not isinstance(obj, dict):
        raise _fail(where, path, "an object (a descriptor)", obj)
    p = path + "."
    digest = obj.get("digest")
    if not isinstance(digest, str):
        raise _fail(where, f"{p}digest", "a string", digest)
    size = obj.get("size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int):
            raise _fail(where, f"{p}size", "a non-negative integer", size)
        if size < 0:
            raise ImageFormatError(f"{where}: {p}size is negative ({size})")
    _str(obj, "mediaType", where, p)
    _str(obj, "artifactType", where, p)
    _str_map(obj, "annotations", where, p)
    _str_list(obj, "urls", where, p)
    platform = _obj(obj, "platform", where, p)
    if platform is not None:
        for key in ("os", "architecture", "variant", "os.version"):
            _str(platform, key, where, f"{p}platform.")
        _str_list(platform, "os.features", where, f"{p}platform.")
        _str_list(platform, "features", where, f"{p}platform.")


def index(doc: Any, where: str) -> None:
    """An OCI image index or a Docker manifest list (``index.json`` too)."""
    if not isinstance(doc, dict):
        raise ImageFormatError(f"{where} is not a JSON object")
    _list_of(doc, "manifests", where, "", descriptor)
    _str_map(doc, "annotations", where, "")
    _str(doc, "mediaType", where, "")


def manifest(doc: Any, where: str) -> None:
    """An OCI image manifest or a Docker schema 2 manifest."""
    if not isinstance(doc, dict):
        raise ImageFormatError(f"{where} is not a JSON object")
    if doc.get("config") is not None:
        descriptor(doc["config"], where, "config")
    _list_of(doc, "layers", where, "", descriptor)
    _str_map(doc, "annotations", where, "")
    _str(doc, "mediaType", where, "")
    _str(doc, "artifactType", where, "")


def docker_save(doc: Any, where: str) -> None:
    """``docker save``'s ``manifest.json``: a list of {Config, RepoTags, Layers, LayerSources}."""
    if not isinstance(doc, list):
        raise ImageFormatError(f"{where}: must be a list of image entries, not {_kind(doc)}")
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise _fail(where, f"entry {i}", "an object", entry)
        lower = {str(k).lower(): v for k, v in entry.items()}
        p = f"entry {i} "
        for key, name in (("config", "Config"),):
            if lower.get(key) is not None and not isinstance(lower[key], str):
                raise _fail(where, p + name, "a string", lower[key])
        for key, name in (("repotags", "RepoTags"), ("layers", "Layers")):
            _str_list({name: lower.get(key)}, name, where, p)
        sources = lower.get("layersources")
        if sources is not None:
            if not isinstance(sources, dict):
                raise _fail(where, p + "LayerSources", "an object", sources)
            for k, d in sources.items():
                descriptor(d, where, f"{p}LayerSources[{k!r:.60}]")


def _history(item: Any, where: str, path: str) -> None:
    if not isinstance(item, dict):
        raise _fail(where, path, "an object", item)
    p = path + "."
    for key in ("created", "created_by", "author", "comment"):
        _str(item, key, where, p)
    _bool(item, "empty_layer", where, p)


def _cmd(doc: dict, key: str, where: str, path: str) -> None:
    """Entrypoint/Cmd/Shell: a list of strings (Docker also reads a single string)."""
    if isinstance(doc.get(key), str):
        return
    _str_list(doc, key, where, path)


def config(doc: Any, where: str) -> None:
    """The image configuration (OCI image-spec config.md; Docker's image JSON)."""
    if not isinstance(doc, dict):
        raise ImageFormatError(f"{where} is not a JSON object")
    for key in ("architecture", "os", "variant", "created", "author", "os.version"):
        _str(doc, key, where, "")
    rootfs = _obj(doc, "rootfs", where, "")
    if rootfs is not None:
        _str(rootfs, "type", where, "rootfs.")
        _str_list(rootfs, "diff_ids", where, "rootfs.")
    _list_of(doc, "history", where, "", _history)
    for ckey in ("config", "Config", "container_config", "ContainerConfig"):
        run = _obj(doc, ckey, where, "")
        if run is None:
            continue
        p = ckey + "."
        _str_list(run, "Env", where, p)
        for key in ("Entrypoint", "Cmd", "Shell"):
            _cmd(run, key, where, p)
        _str_list(run, "OnBuild", where, p)
        for key in ("User", "WorkingDir", "StopSignal", "Image", "Hostname", "Domainname"):
            _str(run, key, where, p)
        _str_map(run, "Labels", where, p)
        _obj(run, "ExposedPorts", where, p)
        _obj(run, "Volumes", where, p)
        health = _obj(run, "Healthcheck", where, p)
        if health is not None:
            _cmd(health, "Test", where, p + "Healthcheck.")
