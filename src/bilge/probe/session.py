"""Run the probes: on the image's full filesystem (traced), then on the slimmed one (verified).

A probe is a command line (``shlex`` syntax, no shell: give ``sh -c '...'`` for one). Its stdout
and exit code on the slimmed filesystem must equal the original's (``compare="output"``), or only
its exit code (``compare="exit"``, for programs whose output varies). When they differ, the report
names what the slim run looked for and did not find although the original run had found it.
"""

from __future__ import annotations

import errno
import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilge import cleanup
from bilge.errors import BilgeError
from bilge.probe import sandbox as sb
from bilge.probe.materialise import (
    Materialised,
    Materialiser,
    link_tree,
    materialise,
    mount_points,
    read_image_file,
    skipped_tree,
)
from bilge.probe.runner import Batch, ProbeRun, run_probes
from bilge.probe.trace import image_paths

if TYPE_CHECKING:
    from bilge.fs import Version
    from bilge.image import Image, Layer
    from bilge.probe.tree import TreeView
    from bilge.probe.where import Place
    from bilge.rewrite.squash import ReadFS, SquashPlan
    from bilge.source.base import ImageSource

INTERPRETERS = ("ruby", "python", "node", "nodejs", "java", "perl", "php")


@dataclass(frozen=True)
class ProbeOptions:
    probes: tuple[tuple[str, ...], ...]
    timeout: float = 60.0
    memory: int = 4 << 30
    compare: str = "output"  # or "exit"
    tmpdir: str | None = None


@dataclass
class ProbeCheck:
    argv: tuple[str, ...]
    original: ProbeRun
    slim: ProbeRun | None = None
    ok: bool = False
    why: str = ""
    missing: list[str] = field(default_factory=list)  # not found in the slim run, found in the original

    def to_json(self) -> dict[str, Any]:
        return {"probe": shlex.join(self.argv), "original": self.original.summary(),
                "slim": self.slim.summary() if self.slim else None, "ok": self.ok, "why": self.why,
                "missing": self.missing}


@dataclass
class ProbeOutcome:
    checks: list[ProbeCheck]
    found: list[str]  # image paths (relative) the probes found
    not_found: list[str]  # looked up and missing (ENOENT): the symlinks on their way are kept
    programs: list[str]  # executed programs and opened files (absolute): roots of the ELF closure
    probe_seconds: float  # the probes' wall time on the original filesystem (side by side, traces parsed)
    materialise_seconds: float = 0.0
    verify_seconds: float = 0.0
    verified: bool = False
    tmpdir: str = ""  # where the filesystems were written (bilge.probe.where)
    tmpdir_note: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"verified": self.verified, "ok": self.ok, "traced_paths": len(self.found),
                "probe_seconds": round(self.probe_seconds, 3),
                "materialise_seconds": round(self.materialise_seconds, 3),
                "verify_seconds": round(self.verify_seconds, 3),
                "tmpdir": self.tmpdir, "tmpdir_note": self.tmpdir_note,
                "probes": [c.to_json() for c in self.checks]}


def parse_probes(probes: Sequence[str], probe_file: str | None = None) -> tuple[tuple[str, ...], ...]:
    """``--probe`` values and the lines of ``--probe-file`` (blank lines and ``#`` comments skipped)."""
    texts = list(probes)
    if probe_file:
        try:
            with open(probe_file, encoding="utf-8") as fh:
                texts += [line.strip() for line in fh if line.strip() and not line.lstrip().startswith("#")]
        except (OSError, UnicodeDecodeError) as exc:
            raise BilgeError(f"--probe-file {probe_file}: {getattr(exc, 'strerror', None) or exc}") from None
    out = []
    for text in texts:
        try:
            argv = tuple(shlex.split(text))
        except ValueError as exc:
            raise BilgeError(f"--probe {text!r}: {exc}") from None
        if not argv:
            raise BilgeError("--probe: empty command")
        out.append(argv)
    return tuple(out)


def interpreter_entrypoint(config: dict[str, Any]) -> str | None:
    """The interpreter the image's Entrypoint/Cmd starts, if it is one (ruby, python3, node ...)."""
    words = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    for word in words[:2]:
        base = os.path.basename(str(word))
        if base in ("sh", "bash", "env", "exec", "-c"):
            continue
        stem = base.rstrip("0123456789.")
        if stem in INTERPRETERS:
            return base
        return None
    return None


def sandbox_spec(rootfs: Path, read: ReadFS, image: Image, opts: ProbeOptions) -> sb.SandboxSpec:
    config = image.container_config
    fs = read.fs

    def image_file(path: str) -> bytes | None:
        real = fs.resolve(path)
        return read_image_file(rootfs, real) if real else None

    uid, gid = sb.image_user(config, image_file("etc/passwd"), image_file("etc/group"))
    workdir = str(config.get("WorkingDir") or "/")
    mounts = tuple(mount_points(rootfs))
    if "/proc" not in mounts or "/dev" not in mounts:
        raise BilgeError("the image's /proc or /dev cannot be made a directory: no sandbox for it")
    return sb.SandboxSpec(rootfs, sb.image_env(config), workdir, uid, gid, opts.timeout, opts.memory, mounts)


class Session:
    """The probes of one ``slim``: :meth:`open` reads the image once and writes its filesystem to a
    temporary directory, :meth:`trace` runs the probes on it, :meth:`verify` on the slim one.
    Owns the temporary directories (removed by :meth:`close`, and by bilge.cleanup on a signal)."""

    def __init__(self, src: ImageSource, opts: ProbeOptions) -> None:
        self.src, self.opts = src, opts
        self.read: ReadFS | None = None
        self.writer: Materialiser | None = None
        self.full: Materialised | None = None
        self.slim: Materialised | None = None
        self.outcome: ProbeOutcome | None = None
        self.materialise_seconds = 0.0
        self.place: Place | None = None
        self._verifying: tuple[Batch, float] | None = None  # start_verify .. finish_verify

    def open(self, *, verify: bool | None = None, progress: Callable[[Layer, int], None] | None = None) -> ReadFS:
        """Read every layer once: the merged filesystem, written to the temporary directory meanwhile
        (where: :mod:`bilge.probe.where`; a tmpfs that fills up is given up for the disk)."""
        from bilge.probe import where

        sb.find_tool("bwrap")
        sb.find_tool("strace")
        started = time.perf_counter()
        stored = sum(layer.size for layer in self.src.image.layers)
        self.place = where.choose(self.opts.tmpdir, stored)
        try:
            self.full, self.read, self.writer = materialise(self.src, parent=self.place.parent, verify=verify,
                                                            progress=progress)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or self.place.why != "tmpfs":
                raise
            self.place = where.choose(cleanup.tempdir(), stored)
            self.full, self.read, self.writer = materialise(self.src, parent=self.place.parent, verify=verify,
                                                            progress=progress)
        self.materialise_seconds = time.perf_counter() - started
        return self.read

    def view(self) -> TreeView:
        """What :func:`bilge.deps.closure` reads: metadata from the merged filesystem, contents (ELF
        headers, scripts' first line, the loader's configuration) from the written tree, on demand."""
        from bilge.probe.tree import TreeView

        assert self.read is not None and self.full is not None
        return TreeView(self.read.fs, self.full.rootfs)

    def tree_complete(self, plan: SquashPlan) -> bool:
        """Whether the materialised tree holds every regular file ``plan`` writes (it leaves out what
        is under /proc, /dev and /sys)."""
        return self.full is not None and self.writer is not None and not any(
            skipped_tree(w.path) for wants in plan.wants.values() for w in wants.values() if w.kind == "file")

    def close(self) -> None:
        if self._verifying is not None:  # interrupted while verifying: no sandbox outlives the trees
            self._verifying[0].abandon()
            self._verifying = None
        for m in (self.slim, self.full):
            if m is not None:
                m.remove()
        self.full = self.slim = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def trace(self) -> ProbeOutcome:
        """Materialise the image and run every probe on it; on any error the directory is removed."""
        try:
            return self._trace()
        except BaseException:
            self.close()
            raise

    def _trace(self) -> ProbeOutcome:
        if self.full is None:
            self.open()
        assert self.full is not None and self.read is not None
        image = self.src.image
        spec = sandbox_spec(self.full.rootfs, self.read, image, self.opts)
        checks: list[ProbeCheck] = []
        found: set[str] = set()
        missing: set[str] = set()
        programs: list[str] = []
        started = time.perf_counter()
        top = self.full.top
        runs = run_probes([(spec, argv, top / f"trace-{i}") for i, argv in enumerate(self.opts.probes)])
        seconds = time.perf_counter() - started  # side by side (bilge.probe.runner), traces parsed
        for argv, run in zip(self.opts.probes, runs, strict=True):
            if run.timed_out:
                raise BilgeError(f"probe {shlex.join(argv)!r} ran past --probe-timeout {self.opts.timeout:g}s "
                                 "in the original image; its trace would be incomplete")
            checks.append(ProbeCheck(argv, run))
            found |= run.trace.found()
            missing |= run.trace.not_found()
            programs += run.trace.executed + run.trace.opened
        self.outcome = ProbeOutcome(checks, image_paths(found), image_paths(missing - found),
                                    sorted(set(programs)), seconds, self.materialise_seconds,
                                    tmpdir=str(self.full.top.parent), tmpdir_note=self.place.note if self.place else "")
        return self.outcome

    def verify(self, keep: Callable[[str, Version], bool]) -> ProbeOutcome:
        """Run the probes again on the filesystem ``keep`` leaves; compare with the original runs."""
        self.start_verify(keep)
        return self.finish_verify()

    def start_verify(self, keep: Callable[[str, Version], bool]) -> None:
        """:meth:`verify` in two halves: this one writes the slim tree and starts the runs; the caller
        may work meanwhile, calling :meth:`step_verify` now and then, until :meth:`finish_verify`."""
        assert self.full is not None and self.outcome is not None and self.read is not None
        started = time.perf_counter()
        if self.slim is not None:
            self.slim.remove()
        self.slim = link_tree(self.full, self.read, keep, parent=self.full.top.parent)
        spec = sandbox_spec(self.slim.rootfs, self.read, self.src.image, self.opts)
        checks, top = self.outcome.checks, self.slim.top

        def again(i: int, run: ProbeRun) -> Path | None:
            # untraced first (strace slows a run down about twice); traced again only to explain a failure
            return None if compare(checks[i].original, run, self.opts.compare)[0] else top / f"trace-{i}"

        self._verifying = (Batch([(spec, check.argv, None) for check in checks], then=again), started)
        self.step_verify()

    @property
    def verifying(self) -> bool:
        return self._verifying is not None

    def step_verify(self) -> None:
        """Start or finish the verification runs that may be, without waiting."""
        if self._verifying is not None:
            self._verifying[0].step(0.0)

    def finish_verify(self) -> ProbeOutcome:
        assert self._verifying is not None and self.outcome is not None
        batch, started = self._verifying
        try:
            runs = batch.wait()
        finally:
            batch.abandon()
            self._verifying = None
        for check, run in zip(self.outcome.checks, runs, strict=True):
            check.ok, check.why = compare(check.original, run, self.opts.compare)
            if run.traced:
                check.missing = sorted(run.trace.not_found() & check.original.trace.found())
            check.slim = run
        self.outcome.verified = True
        self.outcome.verify_seconds = time.perf_counter() - started
        return self.outcome


def compare(original: ProbeRun, slim: ProbeRun, mode: str) -> tuple[bool, str]:
    if slim.timed_out:
        return False, "timed out on the slimmed filesystem"
    if slim.exit_code != original.exit_code:
        return False, f"exit code {slim.exit_code} (original {original.exit_code})"
    if mode == "output" and slim.stdout != original.stdout:
        return False, "stdout differs from the original's"
    return True, ""
