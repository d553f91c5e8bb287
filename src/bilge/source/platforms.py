"""Choosing a platform: ONE matcher for every source (local indexes, docker save archives, registries).

The semantics are containerd's (``platforms.Normalize`` + ``platforms.Only``), which skopeo and the
Docker engine follow too:

* names are normalised first: ``aarch64`` -> ``arm64``, ``x86_64`` -> ``amd64``, ``armhf`` -> ``arm/v7``;
  ``arm64/v8`` is plain ``arm64`` (v8 is the baseline, so the variant is dropped), ``amd64/v1`` is plain
  ``amd64``, and a bare ``arm`` means ``arm/v7``;
* after normalisation os, architecture and variant must be equal -- except that a machine of a given
  ``arm`` or ``amd64`` variant also runs the older ones (``arm/v7`` runs ``arm/v6`` and ``arm/v5``;
  ``amd64/v3`` runs ``v2`` and ``v1``). The closest variant wins.

So ``--platform linux/arm64`` matches an image labelled ``linux/arm64`` or ``linux/arm64/v8`` but not
``linux/arm64/v9``; ``--platform linux/arm64/v8`` matches the same two.
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Callable, Sequence
from typing import TypeVar

from bilge.errors import AmbiguousImageError, BilgeError
from bilge.image import Platform

T = TypeVar("T")

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386", "i686": "386",
                 "armhf": "arm", "armel": "arm", "armv7l": "arm", "armv6l": "arm"}
_ARCH_VARIANT = {"armhf": "v7", "armel": "v6", "armv7l": "v7", "armv6l": "v6"}


def normalize(p: Platform) -> Platform:
    """containerd's normalisation of an os/arch/variant triple."""
    os_ = p.os.lower()
    raw_arch = p.architecture.lower()
    arch = _ARCH_ALIASES.get(raw_arch, raw_arch)
    variant = (p.variant or _ARCH_VARIANT.get(raw_arch) or "").lower()
    if arch == "arm64":
        variant = {"8": "", "v8": "", "v8.0": "", "9": "v9", "9.0": "v9", "v9.0": "v9"}.get(variant, variant)
    elif arch == "arm":
        variant = {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(variant, variant)
    elif arch == "amd64":
        variant = {"v1": "", "1": "", "2": "v2", "3": "v3", "4": "v4"}.get(variant, variant)
    return Platform(os_, arch, variant or None)


def host_platform() -> Platform:
    machine = _platform.machine().lower()
    return normalize(Platform("linux", machine, None))


def _level(variant: str | None) -> int | None:
    """amd64 / arm variant level: "" -> 1 (amd64), "v7" -> 7."""
    if not variant:
        return 1
    if variant.startswith("v") and variant[1:].isdigit():
        return int(variant[1:])
    return None


def rank(have: Platform | None, want: Platform) -> int | None:
    """How well an image of platform ``have`` suits ``want``: 0 exact, n = n variants older, None = no."""
    if have is None:
        return None
    h, w = normalize(have), normalize(want)
    if (h.os, h.architecture) != (w.os, w.architecture):
        return None
    if h.variant == w.variant:
        return 0
    if w.architecture in ("arm", "amd64"):
        hl, wl = _level(h.variant), _level(w.variant)
        if hl is not None and wl is not None and hl < wl and (w.architecture == "amd64" or hl >= 5):
            return wl - hl
    return None


def matches(have: Platform | None, want: Platform) -> bool:
    return rank(have, want) is not None


def choose(items: Sequence[T], platform_of: Callable[[T], Platform | None], want: Platform | None,
           what: str) -> T:
    """Pick the item for ``want`` (or, with no wish, the only item or this host's platform).

    ``what`` names the image for error messages. Raises BilgeError / AmbiguousImageError.
    """
    present = ", ".join(sorted({str(platform_of(i)) for i in items if platform_of(i)})) or "unknown"
    if want is not None:
        ranked = [(r, i) for i in items if (r := rank(platform_of(i), want)) is not None]
        if not ranked:
            raise BilgeError(f"{what}: no image for platform {want}; platforms present: {present}")
        best = min(r for r, _ in ranked)
        hits = [i for r, i in ranked if r == best]
        if len(hits) == 1:
            return hits[0]
        raise AmbiguousImageError(f"{what}: {len(hits)} images match {want}; be more specific: {present}")
    if len(items) == 1:
        return items[0]
    host = host_platform()
    ranked = [(r, i) for i in items if (r := rank(platform_of(i), host)) is not None]
    best = min((r for r, _ in ranked), default=None)
    hits = [i for r, i in ranked if r == best]
    if len(hits) == 1:
        return hits[0]
    listing = ", ".join(str(platform_of(i) or "unknown") for i in items)
    raise AmbiguousImageError(f"{what}: several platforms and none is this host's ({host}); "
                              f"choose with --platform: {listing}")
