"""Image writers: ``oci:DIR[:TAG]``, ``oci-archive:PATH[:TAG]``, ``docker-archive:PATH[:NAME:TAG]``,
``docker://HOST/REPO:TAG`` (a registry) and ``docker-daemon:NAME[:TAG]`` (the local engine).

``write_image(output, config, layers)`` takes a config dict (its ``rootfs`` is filled in from the
layers as written) and a list of layers, each either a :class:`NewLayer` (``(Member, body)`` pairs,
written by the reproducible layer writer in :mod:`bilge.sink.layer`) or an :class:`ExistingLayer`
(a stored blob copied byte for byte). Same inputs and options, same bytes out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bilge.sink import dockerarchive, oci, ociarchive
from bilge.sink.common import (
    ExistingLayer,
    LayerInput,
    LayerRecord,
    NewLayer,
    OutputSpec,
    WriteResult,
    parse_output,
)
from bilge.sink.layer import Compression, Member, source_date_epoch

__all__ = [
    "Compression",
    "ExistingLayer",
    "LayerInput",
    "LayerRecord",
    "Member",
    "NewLayer",
    "OutputSpec",
    "WriteResult",
    "parse_output",
    "source_date_epoch",
    "write_image",
]

def _registry(*args: Any) -> WriteResult:
    from bilge.sink import registry  # the HTTP stack only when pushing

    return registry.write(*args)


def _daemon(*args: Any) -> WriteResult:
    from bilge.sink import daemon

    return daemon.write(*args)


# one writer per place images go (skopeo's transport names)
_WRITERS: dict[str, Callable[..., WriteResult]] = {
    "oci": oci.write, "oci-archive": ociarchive.write, "docker-archive": dockerarchive.write,
    "docker": _registry, "docker-daemon": _daemon,
}


def write_image(
    output: str | OutputSpec,
    config: Mapping[str, Any],
    layers: Sequence[LayerInput],
    *,
    compression: Compression | None = None,
    clamp: int | None = None,
    on_layer: Callable[[int, LayerRecord], None] | None = None,
    verify_full: bool = True,
) -> WriteResult:
    """Write an image; ``clamp`` caps entry mtimes (pass ``source_date_epoch()``)."""
    spec = parse_output(output) if isinstance(output, str) else output
    return _WRITERS[spec.transport](spec, config, layers, compression or Compression(), clamp, on_layer,
                                    verify_full)
