"""What a broad ``COPY --from`` really needs to bring: the part of it the image's programs load.

Given the merged filesystem of the built image (``bilge.fs.walk_image``) and the ELF facts
``bilge.deps.ElfCollector`` gathered in the same pass, the roots are the image's programs that live
*outside* the copied directory -- the Entrypoint/Cmd resolved through ``PATH``, plus every ELF file not
under the COPY's destination -- and their shared-library closure is computed with ``bilge.deps.closure``
exactly as ``bilge deps --entrypoint --path DIR ... --binary PATH ...`` computes it. The closure is then
intersected with the files that COPY wrote and that are still visible in the image.

The roots are expressed as ``--path`` directories (the highest ancestor of each program that does not
contain the destination) and ``--binary`` files (programs directly in an ancestor of the destination),
so the printed ``bilge deps`` command asks for the very same closure.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bilge.deps import DepsResult, ImageView, closure
from bilge.errors import BilgeError
from bilge.fs import MergedFS

_FILE_KINDS = ("file", "hardlink")


@dataclass(frozen=True)
class Roots:
    dest: str  # canonical destination, absolute ("/usr/lib")
    paths: tuple[str, ...]  # --path directories, absolute
    binaries: tuple[str, ...]  # --binary files, absolute
    programs: int  # ELF files outside the destination (what the --path/--binary roots cover)
    entrypoint: bool  # the image has an Entrypoint or Cmd


@dataclass(frozen=True)
class CopyNeed:
    """The closure of the programs outside a copied directory, against what that COPY wrote."""

    roots: Roots
    programs: int  # roots bilge deps resolved (ELF files and scripts, entrypoint included)
    needed_files: int  # regular files the COPY wrote that the closure needs (likely-needed ones left out)
    needed_bytes: int
    needed_links: int  # symlinks the COPY wrote that the closure passes through
    likely_files: int  # "likely needed at run time" (NSS, gconv, libgcc_s ...) files the COPY wrote
    likely_bytes: int
    already_bytes: int  # needed bytes at paths the image already had a file at before this COPY
    needed_paths: tuple[str, ...]  # the needed regular files (likely ones left out), sorted
    missing: tuple[tuple[str, tuple[str, ...]], ...]  # (soname, needed by): the loader would fail
    closure_files: int  # regular files in the whole closure (inside and outside the copy)
    resolved: bool  # False: there was nothing to resolve (no entrypoint, no ELF file outside the destination)
    notes: tuple[str, ...] = ()


def _has_entrypoint(config: Mapping[str, object]) -> bool:
    return bool(config.get("Entrypoint") or config.get("Cmd"))


def find_roots(fs: MergedFS, view: ImageView, dest: str, config: Mapping[str, object],
               elf_paths: Sequence[str] | None = None) -> Roots:
    """The programs outside ``dest`` as ``bilge deps`` roots.

    ``elf_paths``: every visible regular ELF file of the image (relative paths), from :func:`elf_files`.
    """
    canon = fs.resolve(dest.strip("/")) if dest.strip("/") else ""
    if canon is None:  # the destination does not resolve (should not happen once the COPY ran)
        canon = dest.strip("/")
    dparts = [p for p in canon.split("/") if p]
    paths: set[str] = set()
    binaries: list[str] = []
    programs = 0
    for rel in elf_paths if elf_paths is not None else elf_files(fs, view):
        parts = rel.split("/")
        if parts[: len(dparts)] == dparts:
            continue  # under the copied directory (everything is, when it is "/")
        programs += 1
        # the highest ancestor directory that does not contain the destination
        for k in range(1, len(parts)):
            if parts[:k] != dparts[:k]:
                paths.add("/" + "/".join(parts[:k]))
                break
        else:
            binaries.append("/" + rel)
    return Roots("/" + canon, tuple(sorted(paths)), tuple(sorted(binaries)), programs, _has_entrypoint(config))


def elf_files(fs: MergedFS, view: ImageView) -> list[str]:
    """Every visible regular file that is a readable ELF object (relative paths, sorted)."""
    out = []
    for path, v in fs.visible():
        if v.kind not in _FILE_KINDS:
            continue
        info = view.elf(path)
        if info is not None and info.elf_class:
            out.append(path)
    return out


def deps_command(reference: str, roots: Roots | None, stage: str) -> str:
    """The ``bilge deps`` command line that computes the same closure and prints the COPY lines.

    Without roots (nothing to resolve), a template with ``--binary PATH`` for the user to fill in.
    """
    args = ["bilge", "deps", reference]
    if roots is None:
        return shlex.join(args) + " --binary PATH " + shlex.join(["--format", "dockerfile", "--from", stage])
    if roots.entrypoint:
        args.append("--entrypoint")
    for p in roots.paths:
        args += ["--path", p]
    for b in roots.binaries:
        args += ["--binary", b]
    args += ["--format", "dockerfile", "--from", stage]
    return shlex.join(args)


def resolve_closure(view: ImageView, roots: Roots, config: Mapping[str, object]) -> tuple[DepsResult | None, list[str]]:
    """``bilge.deps.closure`` for these roots; (None, notes) when there is nothing to resolve."""
    notes: list[str] = []
    if not (roots.entrypoint or roots.paths or roots.binaries):
        return None, notes
    try:
        return closure(view, binaries=roots.binaries, paths=roots.paths, entrypoint=roots.entrypoint,
                       config=config), notes
    except BilgeError as exc:
        if not roots.entrypoint:
            raise
        notes.append(f"the Entrypoint/Cmd could not be resolved ({exc})")
    if not (roots.paths or roots.binaries):
        return None, notes
    return closure(view, binaries=roots.binaries, paths=roots.paths, config=config), notes


def copy_need(fs: MergedFS, view: ImageView, layer: int, roots: Roots, result: DepsResult | None,
              notes: Sequence[str] = ()) -> CopyNeed:
    """Intersect a closure with the files ``layer`` wrote that are still visible."""
    needed_files = needed_bytes = needed_links = likely_files = likely_bytes = already = 0
    paths: list[str] = []
    missing: tuple[tuple[str, tuple[str, ...]], ...] = ()
    programs = closure_files = 0
    if result is not None:
        programs = len(result.roots)
        closure_files = result.file_count
        missing = tuple((m.soname, m.needed_by) for m in result.missing)
        for f in result.files:
            v = fs.lookup(f.path)
            if v is None or v.layer != layer:
                continue
            if f.kind == "symlink":
                needed_links += 1
                continue
            size = v.body.size if v.body is not None else f.size
            if f.role == "likely":
                likely_files += 1
                likely_bytes += size
                continue
            needed_files += 1
            needed_bytes += size
            paths.append(f.path)
            if any(o.layer < layer and o.kind in _FILE_KINDS for o in fs.versions(f.path)):
                already += size
    return CopyNeed(roots, programs, needed_files, needed_bytes, needed_links, likely_files, likely_bytes, already,
                    tuple(sorted(paths)), missing, closure_files, result is not None, tuple(notes))
