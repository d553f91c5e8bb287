"""The shared-library closure of programs inside an image, resolved as the image's own loader would.

Everything here works on a small read-only :class:`View` of a root filesystem: ``lstat``, ``listdir``,
``read_small`` and ``elf``. :class:`DirView` reads a real directory (tests, unpacked rootfs);
``ImageView`` (see :func:`image_view`) is built from one pass over an image's layers.

Paths handed to a view are absolute, inside the image ("/usr/lib/x86_64-linux-gnu/libc.so.6"), and
their parent directories are always already resolved (no symlink in the parent part): symlinks are
followed only here, component by component, like the kernel does, confined to the image root.

Loader rules implemented (see docs/deps.md for the sources):

glibc (``_dl_map_object``): a DT_NEEDED name containing "/" is opened as a path; otherwise an object
already loaded under that name or SONAME is reused; else ``DT_RPATH`` of the requesting object and of
each object up its loading chain (only when the requester has no ``DT_RUNPATH``; an object's RPATH is
ignored when it has a RUNPATH), ``LD_LIBRARY_PATH`` (image ENV), the requester's ``DT_RUNPATH``,
``/etc/ld.so.cache`` (not with ``DF_1_NODEFLIB`` for entries in system directories), then the system
directories compiled into the image's loader (not with ``DF_1_NODEFLIB``). ``glibc-hwcaps/<level>``
subdirectories of every searched directory are looked at first. ``$ORIGIN``, ``$LIB``, ``$PLATFORM``
are expanded; ``$PLATFORM`` to every string the loader may use on the architecture (on x86-64 glibc
picks ``haswell`` or ``xeon_phi`` over ``x86_64`` by CPU), generic first. A candidate of the wrong ELF class or machine is skipped; a non-ELF file, wrong byte order
or OS/ABI stops the search with an error, as in ``open_verify``.

musl (``load_library``): the reserved names (libc, libpthread, librt, libm, libdl, libutil, libxnet)
are the loader itself; ``LD_LIBRARY_PATH``; the RUNPATH-or-RPATH of the requester and of every object up
its loading chain (``$ORIGIN`` only); ``/etc/ld-musl-$ARCH.path`` (relative to the loader's prefix) or
``/lib:/usr/local/lib:/usr/lib``. musl opens the first file found, whatever its architecture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bilge.deps.ldconfig import (
    CacheEntry,
    is_musl_interp,
    loader_search_info,
    parse_ld_so_cache,
    parse_ld_so_conf,
    parse_nsswitch,
)
from bilge.deps.model import DepFile, DepsResult, DirStat, Edge, Likely, Missing, Root
from bilge.deps.resolver import Resolver
from bilge.deps.roots import _Roots
from bilge.deps.session import _Sink
from bilge.deps.tree import Resolved, Tree
from bilge.deps.view import SHELLS, DirView, ElfCollector, ImageView, Stat, View, image_view
from bilge.errors import BilgeError

__all__ = [
    "SHELLS", "CacheEntry", "DepFile", "DepsResult", "DirStat", "DirView", "Edge", "ElfCollector",
    "ImageView", "Likely", "Missing", "Resolved", "Resolver", "Root", "Stat", "Tree", "View", "closure",
    "image_view", "is_musl_interp", "loader_search_info", "parse_ld_so_cache", "parse_ld_so_conf",
    "parse_nsswitch",
]

LIB_TREES = ("/usr/lib", "/lib", "/usr/lib64", "/lib64", "/usr/local/lib", "/usr/lib32", "/lib32")


def closure(
    view: View,
    *,
    binaries: Sequence[str] = (),
    paths: Sequence[str] = (),
    entrypoint: bool = False,
    config: Mapping[str, object] | None = None,
    strict: bool = False,
    compare: Sequence[str] | None = None,
) -> DepsResult:
    """The files the given programs need at run time, as found in ``view``.

    ``config`` is the image's runtime config (Env, Entrypoint, Cmd, WorkingDir).
    """
    config = config or {}
    env: dict[str, str] = {}
    for item in config.get("Env") or []:  # type: ignore[union-attr]
        k, _, v = str(item).partition("=")
        env[k] = v
    workdir = str(config.get("WorkingDir") or "/")
    resolver = Resolver(view, env, workdir)
    roots = _Roots(resolver, env)
    for b in binaries:
        roots.add(b, "binary")
    for p in paths:
        roots.add_dir(p)
    if entrypoint:
        roots.add_entrypoint(config)
    if not (binaries or paths or entrypoint):
        raise BilgeError("nothing to resolve: give --binary PATH, --path DIR or --entrypoint")

    sink = _Sink(resolver.tree)
    for name, needed_by, reason in roots.missing:
        sink.miss(name, needed_by, reason)
    final_roots: list[Root] = []
    for root in roots.roots:
        sink.add_object(root.canonical, resolver.elf_at(root.canonical), "root", None,
                        sorted(roots.links.get(root.canonical, ())))
        flavor = None
        if root.kind == "elf":
            info = resolver.elf_at(root.canonical)
            assert info is not None
            flavor = resolver.root_closure(root.canonical, root.path, info, strict, sink)
        final_roots.append(Root(root.path, root.canonical, root.kind, root.origin, root.interpreter, flavor))

    files = tuple(
        DepFile(
            path=p,
            kind=e["kind"],
            size=e["size"],
            role=e["role"],
            needed_by=tuple(sorted(e["needed_by"])),
            target=e["target"],
            reason="; ".join(e["reasons"]) if e["role"] in ("likely", "hwcaps") and e["reasons"] else None,
            elf=e["elf"],
        )
        for p, e in sorted(sink.files.items())
    )
    missing = tuple(
        Missing(name, tuple(sorted(m["needed_by"])), "; ".join(m["reasons"]) or None)
        for name, m in sorted(sink.missing.items())
    )
    likely = tuple(sorted(sink.likely.values(), key=lambda x: (not x.present, x.path)))

    dirs: list[DirStat] = []
    for top in compare if compare is not None else LIB_TREES:
        res = resolver.tree.resolve(top)
        if res.kind != "dir" or (compare is None and res.path != top):
            continue
        prefix = res.path.rstrip("/") + "/"
        inside = [f for f in files if f.kind == "file" and f.path.startswith(prefix) and f.role != "likely"]
        likely_inside = [f for f in files if f.kind == "file" and f.path.startswith(prefix) and f.role == "likely"]
        if not inside and not likely_inside and compare is None:
            continue
        total, count = resolver.tree.du(res.path)
        dirs.append(DirStat(top, total, count, sum(f.size for f in inside), len(inside),
                            sum(f.size for f in likely_inside), len(likely_inside)))

    return DepsResult(
        roots=tuple(final_roots),
        files=files,
        missing=missing,
        likely=likely,
        trees=sink.trees,
        notes=tuple(resolver.notes),
        dirs=tuple(dirs),
        strict=strict,
    )

