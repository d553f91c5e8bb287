"""bilge: where the bytes of a container image go, and how to get rid of the dead weight.

The library's front door::

    from bilge import open_image, walk_image

    with open_image("docker://registry.example/team/app:1.4") as src:   # or oci:DIR, a docker save tar ...
        for layer in src.image.layers:
            print(layer.index, layer.digest, layer.created_by)
        fs = walk_image(src)                  # every layer read once, in order, into the merged filesystem
        print(fs.lookup("etc/os-release"))    # the visible version of a path, and the layer that wrote it

``open_image`` returns an :class:`ImageSource` (a context manager); ``iter_layer(src, layer)`` yields
one layer's :class:`Entry` objects; every failure the user can cause is a :class:`BilgeError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["BilgeError", "Entry", "Image", "ImageSource", "Layer", "MergedFS", "SourceOptions", "iter_layer",
           "open_image", "walk_image"]

# name -> module; imported on first use so that `import bilge` (and the CLI's start-up) stays cheap
_EXPORTS = {
    "BilgeError": "bilge.errors",
    "Entry": "bilge.layers",
    "iter_layer": "bilge.layers",
    "Image": "bilge.image",
    "Layer": "bilge.image",
    "ImageSource": "bilge.source.base",
    "SourceOptions": "bilge.source.base",
    "open_image": "bilge.source",
    "walk_image": "bilge.fs",
    "MergedFS": "bilge.fs",
}

if TYPE_CHECKING:
    from bilge.errors import BilgeError
    from bilge.fs import MergedFS, walk_image
    from bilge.image import Image, Layer
    from bilge.layers import Entry, iter_layer
    from bilge.source import open_image
    from bilge.source.base import ImageSource, SourceOptions


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bilge' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
