"""``slim``: keep only what the given programs need (their shared-library closure, the essentials)."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bilge import __version__
from bilge.errors import BilgeError
from bilge.fs import MergedFS, Version
from bilge.image import Image, Layer
from bilge.rewrite.config import RewriteResult, rewrite_config
from bilge.rewrite.squash import ReadFS, SquashCounts, plan_squash, read_fs, squash_members
from bilge.sink import Compression, NewLayer, OutputSpec, write_image
from bilge.symlinks import walk

if TYPE_CHECKING:
    from bilge.source.base import ImageSource


ESSENTIAL_FILES = (
    "etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/ld.so.cache", "etc/ld.so.conf", "etc/localtime",
    "etc/timezone", "etc/os-release", "usr/lib/os-release", "etc/ca-certificates.conf", "etc/ssl/cert.pem",
    "etc/mime.types", "etc/host.conf", "etc/gai.conf",
)
ESSENTIAL_TREES = (
    "etc/ld.so.conf.d", "etc/ssl/certs", "usr/share/ca-certificates", "etc/pki/tls/certs",
    "etc/pki/ca-trust", "usr/share/zoneinfo",
)
ESSENTIAL_DIRS = ("tmp", "var/tmp")  # the directory itself, with its mode (1777), not its contents


@dataclass
class KeepSet:
    """Paths (merged, no leading "/") to keep: exact paths, whole trees, and bare directories."""

    exact: set[str] = field(default_factory=set)
    trees: set[str] = field(default_factory=set)
    reasons: dict[str, str] = field(default_factory=dict)
    parents: set[str] = field(default_factory=set)
    _under: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)  # dir -> in a tree

    def add(self, path: str, reason: str, tree: bool = False) -> None:
        path = path.strip("/")
        if not path:
            return
        if tree:
            self._under.clear()
        (self.trees if tree else self.exact).add(path)
        self.reasons.setdefault(path, reason)
        parent = posixpath.dirname(path)
        while parent and parent not in self.parents:
            self.parents.add(parent)
            parent = posixpath.dirname(parent)

    def __call__(self, path: str, v: Version | None = None) -> bool:
        if path in self.exact or path in self.parents or path in self.trees:
            return True
        return self._in_tree(path.rpartition("/")[0])

    def _in_tree(self, d: str) -> bool:
        """Whether the directory ``d`` or one above it is a kept tree (remembered per directory:
        a slim asks for every path of the image, several times)."""
        known = self._under.get(d)
        if known is None:
            known = self._under[d] = bool(d) and (d in self.trees or self._in_tree(d.rpartition("/")[0]))
        return known


def keep_chain(fs: MergedFS, keep: KeepSet, path: str, reason: str, *, tree: bool = False) -> str | None:
    """Keep ``path`` and every symlink met on the way to it (component by component, like the
    kernel); return the real path, or None when it does not exist in the image."""
    w = walk(path, fs.lookup, clamp=True)
    for link in w.links:
        keep.add(link, reason)
    if w.problem is not None:
        return None
    real = w.path
    if real:
        keep.add(real, reason, tree=tree and (fs.lookup(real) is not None and fs.lookup(real).kind == "dir"))
    return real


def _observed_dlopen(f: Any) -> bool:
    """A closure file the probes' trace decides on instead: glibc's iconv (gconv) modules, which the
    closure adds whole (8 MB in Debian) as "likely" whenever a program can call ``iconv_open``. A probe
    that converts a character set loads its module with ``openat``, which strace records, so what the
    probes used is kept as traced; the NSS modules, libgcc_s and the loader stay (small, and loaded on
    paths a probe easily misses: a user lookup, a thread cancelled at exit)."""
    return f.role == "likely" and "gconv" in (f.reason or "")


@dataclass(frozen=True)
class SlimPlan:
    keep: KeepSet
    kept_files: int
    kept_bytes: int  # regular-file bytes kept (each hardlinked body once)
    visible_files: int
    visible_bytes: int
    missing: tuple[str, ...]  # libraries / interpreters the closure could not find
    notes: tuple[str, ...]
    top: tuple[tuple[str, int, int], ...]  # (directory, files, bytes) kept, biggest first
    kept_above_base: int = 0  # of kept_bytes, the bodies written by the layers above the bottom one


def multistage_equivalent(read: ReadFS, splan: SlimPlan) -> dict[str, int] | None:
    """What a multistage build of the same program would weigh: its final stage ``FROM`` the base image
    (the bottom layer, kept whole: a Debian, Ubuntu or Alpine base is one layer) plus ``COPY --from``
    of the kept files that the layers above it wrote. Regular-file bytes, like ``kept_bytes``; None
    for a one-layer image (no base to tell apart)."""
    layers = read.fs.layers
    if len(layers) < 2:
        return None
    base = layers[0].file_bytes
    return {"bytes": base + splan.kept_above_base, "base_layer_bytes": base,
            "kept_above_base_bytes": splan.kept_above_base}


def plan_slim(read: ReadFS, image: Image, keep_paths: Sequence[str], *, entrypoint: bool,
              view: Any = None, traced: Sequence[str] = (), traced_missing: Sequence[str] = (),
              programs: Sequence[str] = ()) -> SlimPlan:
    """Decide what a slim image keeps: the given paths, the ELF closure of every program among them
    (and of the entrypoint), and the files a program expects to find (see ESSENTIAL_*).

    With ``--probe`` (:mod:`bilge.probe`): ``traced`` paths (each with the symlinks and directories on
    its way), the symlinks on the way to the ``traced_missing`` paths (a search path that failed), and
    the ELF closure of every executed or opened ``programs`` object."""
    from bilge.deps import closure

    fs = read.fs
    keep = KeepSet()
    binaries: list[str] = []
    paths: list[str] = []
    for given in keep_paths:
        real = keep_chain(fs, keep, given, "--keep", tree=True)
        if real is None:
            raise BilgeError(f"--keep {given}: no such path in the image")
        v = fs.lookup(real)
        if v is None:
            continue
        if v.kind == "dir":
            paths.append("/" + real)
        elif v.body is not None and view is not None:
            # an ELF file or a #! script is a program: its closure (or interpreter's) comes along
            if view.elf("/" + real) is not None or (view.read_small("/" + real, 2) or b"").startswith(b"#!"):
                binaries.append("/" + real)
    for path in traced:
        keep_chain(fs, keep, path, "traced")
    for path in traced_missing:
        keep_chain(fs, keep, path, "traced")
    for path in programs:
        real = fs.resolve(path)
        v = fs.lookup(real) if real else None
        # an ELF object, or a #! script: the kernel loads a script's interpreter (and an ELF program's
        # loader) without a system call strace could show, so the closure must bring them
        if v is not None and v.body is not None and view is not None and (
                view.elf("/" + real) is not None or (view.read_small("/" + real, 2) or b"").startswith(b"#!")):
            binaries.append("/" + real)
    binaries = list(dict.fromkeys(binaries))
    notes: list[str] = []
    missing: list[str] = []
    config = image.container_config
    if view is not None and (binaries or paths or entrypoint):
        result = closure(view, binaries=binaries, paths=paths, entrypoint=entrypoint, config=config)
        probed = bool(traced or traced_missing or programs)
        for f in result.files:
            if probed and _observed_dlopen(f):
                continue
            keep_chain(fs, keep, f.path, f"needed ({f.role})")
        missing = [f"{m.soname} (needed by {', '.join(m.needed_by)})" + (f": {m.reason}" if m.reason else "")
                   for m in result.missing]
        notes.extend(result.notes)
    for path in ESSENTIAL_FILES:
        if fs.lookup(path) is not None:
            keep_chain(fs, keep, path, "essential")
    for path in ESSENTIAL_TREES:
        if fs.lookup(path) is not None:
            keep_chain(fs, keep, path, "essential", tree=True)
    for path in ESSENTIAL_DIRS:
        v = fs.lookup(path)
        if v is not None and v.kind == "dir":
            keep.add(path, "essential directory")
    workdir = str(config.get("WorkingDir") or "").strip("/")
    if workdir and fs.lookup(workdir) is not None:
        keep_chain(fs, keep, workdir, "WorkingDir")
    # sizes
    kept_bodies: dict[int, int] = {}
    all_bodies: dict[int, int] = {}
    by_dir: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    visible_files = kept_files = above = 0
    for path, v in fs.visible():
        if v.body is None:
            continue
        visible_files += 1
        all_bodies[id(v.body)] = v.body.size
        if keep(path, v):
            kept_files += 1
            if id(v.body) not in kept_bodies:
                kept_bodies[id(v.body)] = v.body.size
                above += v.body.size if v.body.layer > 0 else 0
                acc = by_dir["/" + "/".join(path.split("/")[:-1][:3])]
                acc[0] += 1
                acc[1] += v.body.size
    top = tuple(sorted(((d, n, b) for d, (n, b) in by_dir.items()), key=lambda t: (-t[2], t[0]))[:15])
    return SlimPlan(keep, kept_files, sum(kept_bodies.values()), visible_files, sum(all_bodies.values()),
                    tuple(missing), tuple(notes), top, above)


def slim(src: ImageSource, output: str | OutputSpec | None, keep_paths: Sequence[str], *, entrypoint: bool = False,
         compression: Compression | None = None, clamp: int | None = None, verify: bool | None = None,
         progress: Callable[[Layer, int], None] | None = None, dry_run: bool = False,
         command: str | None = None, keep_secrets: bool = False, ruleset: Any = None,
         ignores: Sequence[Any] = (), probe: Any = None) -> tuple[RewriteResult, SlimPlan]:
    """Keep the given paths, their ELF closure, the entrypoint's, and the essentials; drop the rest.

    Secrets ``bilge secrets`` finds in the history and config are redacted in the output unless
    ``keep_secrets`` (see :mod:`bilge.secrets.rewriting`).

    ``probe`` (:class:`bilge.probe.ProbeOptions`) runs the image's own programs in a sandbox, keeps
    what they touched, and verifies the result by running them again on the slimmed filesystem
    (see :mod:`bilge.probe`); ``details["probe"]`` says how that went and no image is written when
    the slim runs differ from the original ones."""
    from bilge.deps import ElfCollector

    image: Image = src.image
    if not image.layers:
        raise BilgeError(f"{image.reference}: the image has no layers")
    if not keep_paths and not entrypoint and probe is None:
        raise BilgeError("nothing to keep: give --keep PATH (repeatable), --entrypoint and/or --probe CMD")
    if probe is None:
        collector = ElfCollector()
        read = read_fs(src, verify=verify, visitors=[collector], progress=progress)
        return _slim_planned(src, read, output, keep_paths, entrypoint=entrypoint, view=collector.view(read.fs),
                             compression=compression, clamp=clamp, dry_run=dry_run, command=command,
                             keep_secrets=keep_secrets, ruleset=ruleset, ignores=ignores)
    from bilge.probe.session import Session

    config = image.container_config
    with Session(src, probe) as session:
        # one read of the layers: the merged filesystem, written to disk meanwhile; the library
        # closure reads the few ELF files it needs from there, and so does the slim layer's writer
        read = session.open(verify=verify, progress=progress)
        outcome = session.trace()
        has_entry = bool(config.get("Entrypoint") or config.get("Cmd"))
        splan = plan_slim(read, image, keep_paths, entrypoint=entrypoint or has_entry, view=session.view(),
                          traced=outcome.found, traced_missing=outcome.not_found, programs=outcome.programs)
        # a staged output (an archive or a layout: renamed into place only once whole) is written
        # while the verification runs go on, and given up if they fail; any other after them
        overlap = not dry_run and output is not None and _staged(output)
        if overlap:
            session.start_verify(splan.keep)
        else:
            session.verify(splan.keep)
        return _slim_planned(src, read, output, keep_paths, entrypoint=entrypoint, splan=splan,
                             compression=compression, clamp=clamp, dry_run=dry_run or not overlap and not outcome.ok,
                             command=command, outcome=outcome, keep_secrets=keep_secrets, ruleset=ruleset,
                             ignores=ignores, session=session)


def _staged(output: str | OutputSpec) -> bool:
    from bilge.sink import parse_output

    spec = parse_output(output) if isinstance(output, str) else output
    return spec.transport in ("docker-archive", "oci-archive", "oci")


class _NotVerified(Exception):
    """The slimmed filesystem failed the probes while its archive was being written."""


def _verified(session: Any, members: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """``members``, advancing the verification runs meanwhile; once the last is out, wait for them
    and stop the write (:class:`_NotVerified`: the sink removes what it staged) if they failed."""
    for i, item in enumerate(members):
        if i % 32 == 0:
            session.step_verify()
        yield item
    if not session.finish_verify().ok:
        raise _NotVerified


class _Without(KeepSet):
    """A keep set less some paths (how a test breaks a slim plan on purpose)."""

    def __init__(self, base: KeepSet, gone: set[str]) -> None:
        super().__init__(base.exact, base.trees, base.reasons, base.parents)
        self.gone = gone

    def __call__(self, path: str, v: Version | None = None) -> bool:
        return path not in self.gone and super().__call__(path, v)


def kept_by_origin(read: ReadFS, keep: KeepSet) -> dict[str, dict[str, int]]:
    """Files and bytes kept, by why: traced, closure (ELF closure), user (--keep), essential, other."""
    out: dict[str, dict[str, int]] = {}
    seen: set[int] = set()
    for path, v in read.fs.visible():
        if v.body is None or not keep(path, v) or id(v.body) in seen:
            continue
        seen.add(id(v.body))
        reason = keep.reasons.get(path)
        p = path
        while reason is None and p:
            p = posixpath.dirname(p)
            reason = keep.reasons.get(p) if p in keep.trees else None
        reason = reason or "other"
        origin = ("traced" if reason == "traced" else "closure" if reason.startswith("needed")
                  else "user" if reason == "--keep" else "essential" if reason.startswith("essential") else "other")
        acc = out.setdefault(origin, {"files": 0, "bytes": 0})
        acc["files"] += 1
        acc["bytes"] += v.body.size
    return out


def _slim_planned(src: ImageSource, read: ReadFS, output: str | OutputSpec | None, keep_paths: Sequence[str], *,
                  entrypoint: bool, view: Any = None, splan: SlimPlan | None = None,
                  compression: Compression | None, clamp: int | None, dry_run: bool, command: str | None,
                  outcome: Any = None, keep_secrets: bool = False, ruleset: Any = None,
                  ignores: Sequence[Any] = (), session: Any = None) -> tuple[RewriteResult, SlimPlan]:
    image: Image = src.image
    if splan is None:
        splan = plan_slim(read, image, keep_paths, entrypoint=entrypoint, view=view)
    details = {
        "kept_files": splan.kept_files, "kept_bytes": splan.kept_bytes,
        "visible_files": splan.visible_files, "visible_bytes": splan.visible_bytes,
        "dropped_bytes": splan.visible_bytes - splan.kept_bytes,
        "missing": list(splan.missing), "notes": list(splan.notes),
        "largest_kept_directories": [{"path": d, "files": n, "bytes": b} for d, n, b in splan.top],
        "multistage_equivalent": multistage_equivalent(read, splan),
    }
    if outcome is not None:
        details["kept_by_origin"] = kept_by_origin(read, splan.keep)
        details["probe"] = outcome.to_json()
    counts = SquashCounts()
    if dry_run or output is None:
        return RewriteResult("slim", image.reference, None, len(image.layers), image.compressed_bytes, 0,
                             counts, details), splan
    plan = plan_squash(read, 0, keep=splan.keep)
    what = "kept " + ", ".join(keep_paths) if keep_paths else "kept the entrypoint"
    if outcome is not None:
        what = ("kept what the probes touched" + (", " + ", ".join(keep_paths) if keep_paths else "")
                + " and the entrypoint")
    entry = {
        "created_by": command or "bilge slim",
        "comment": f"bilge {__version__}: {what}" + (" and the entrypoint" if entrypoint and keep_paths else "")
                   + ", their library closure and essentials; dropped the rest",
    }
    redacted: list[str] = []
    if not keep_secrets:
        from bilge.secrets.rewriting import redact_config_secrets

        image, redacted = redact_config_secrets(image, ruleset=ruleset, ignores=ignores)
    details["secrets_redacted"] = redacted
    details["secrets_kept"] = keep_secrets
    config = rewrite_config(image, 0, entry, clamp=clamp)
    members = squash_members(src, read, plan, counts, clamp=clamp)
    if session is not None and session.tree_complete(plan):
        from bilge.probe.tree import tree_members

        # the bodies from the materialised tree: no third read of the layers
        members = tree_members(read, plan, session.full.rootfs, counts, session.writer.extras, clamp=clamp)
    if session is not None and session.verifying:
        members = _verified(session, members)
        try:
            result = write_image(output, config, [NewLayer(members)], compression=compression, clamp=clamp)
        except _NotVerified:
            return RewriteResult("slim", image.reference, None, len(image.layers), image.compressed_bytes, 0,
                                 SquashCounts(), details), splan
        finally:
            details["probe"] = outcome.to_json()  # verified now (or not: no image written)
    else:
        result = write_image(output, config, [NewLayer(members)], compression=compression, clamp=clamp)
    return RewriteResult("slim", image.reference, result, len(image.layers), image.compressed_bytes,
                         result.layer_bytes, counts, details), splan
