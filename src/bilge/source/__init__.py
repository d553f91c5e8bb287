"""Places images come from. ``open_image(reference)`` returns an :class:`ImageSource`.

Every source produces the same model (:class:`bilge.image.Image`) and hands out blobs by digest or
layer; nothing downstream knows which kind of source it reads. One module per transport, chosen by
the table below (skopeo's transport names); none imports another:

=================  ==========================  ==================================================
transport          module                      reads
=================  ==========================  ==================================================
``docker-archive``  ``bilge.source.archive``    ``docker save`` tars (and what other tools write)
``oci``             ``bilge.source.layout``     OCI image layout directories
``oci-archive``     ``bilge.source.layout``     tars of an OCI image layout
``docker``          ``bilge.source.registry``   registries (OCI distribution API), ``docker://``
``docker-daemon``   ``bilge.source.daemon``     the Docker engine's image store, over its API
=================  ==========================  ==================================================

A bare ``NAME[:TAG]`` that is not a path (transport ``auto``) is read from the local engine when
one answers and has the image, else from the registry -- as trivy does.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from bilge.errors import BilgeError
from bilge.image import Platform
from bilge.reference import Reference, parse
from bilge.source.base import Credentials, FetchProgress, ImageSource, SourceOptions
from bilge.source.common import blob_path, check_digest, load_json
from bilge.source.platforms import host_platform

__all__ = ["Credentials", "FetchProgress", "ImageSource", "SourceOptions", "blob_path", "check_digest",
           "host_platform", "load_json", "open_image"]


class Opener(Protocol):
    def __call__(self, ref: Reference, want: Platform | None, verify: bool,
                 options: SourceOptions) -> ImageSource: ...


# transport -> (module, function); imported on first use so that reading a local file never loads
# the HTTP stack
_OPENERS: dict[str, tuple[str, str]] = {
    "docker-archive": ("bilge.source.archive", "open_source"),
    "oci": ("bilge.source.layout", "open_source"),
    "oci-archive": ("bilge.source.layout", "open_source"),
    "docker": ("bilge.source.registry", "open_source"),
    "docker-daemon": ("bilge.source.daemon", "open_source"),
    "auto": ("bilge.source.auto", "open_source"),
}


def opener(transport: str) -> Opener:
    try:
        module, name = _OPENERS[transport]
    except KeyError:
        raise BilgeError(f"unknown transport {transport!r}") from None
    fn: Opener = getattr(importlib.import_module(module), name)
    return fn


def open_image(reference: str | Reference, *, platform: str | Platform | None = None,
               verify: bool = True, options: SourceOptions | None = None) -> ImageSource:
    """Open an image by reference (skopeo transport names; bare paths are sniffed, bare names looked up)."""
    ref = parse(reference) if isinstance(reference, str) else reference
    want = Platform.parse(platform) if isinstance(platform, str) else platform
    return opener(ref.transport)(ref, want, verify, options or SourceOptions())
