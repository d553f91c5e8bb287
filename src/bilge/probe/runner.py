"""Starting probe runs and waiting for them: one at a time (:func:`run_probe`) or side by side
(:func:`run_probes`).

Side by side, up to one run per CPU (at most four), from this one thread: each run's stdout and
stderr go to unnamed temporary files (no pipe to drain), the runs are waited for together with
``poll`` on their pidfds, each with its own wall-clock limit, and each run's trace is read and
parsed while it runs (:class:`TraceReader`), so that little is left to parse when it ends. The results come back in the probes' order, and the
first error in that order is raised, as a run one after the other would have. The memory limit is
set by util-linux's ``prlimit`` before it executes the sandbox (``preexec_fn``, which Python
documents as unsafe while other threads run, only where there is no ``prlimit``): ``slim`` writes
its archive, with a hashing thread, while the verification runs start. A traced run is pinned, strace
and sandbox together, to one CPU no other traced run holds (util-linux's ``taskset``; see
:func:`trace_cpus` for why).
"""

from __future__ import annotations

import os
import resource
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bilge import cleanup
from bilge.errors import BilgeError
from bilge.probe import sandbox as sb
from bilge.probe.trace import STRACE_ARGS, Parser, Trace

MAX_WORKERS = 4
READ_EVERY = 0.05  # seconds between two reads of a running probe's trace


@dataclass
class ProbeRun:
    argv: tuple[str, ...]
    exit_code: int
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool
    trace: Trace
    traced: bool = True

    def summary(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "seconds": round(self.seconds, 3), "timed_out": self.timed_out,
                "stdout_bytes": len(self.stdout), "traced": self.traced,
                "paths_found": len(self.trace.found()) if self.traced else None,
                "paths_not_found": len(self.trace.not_found()) if self.traced else None}


@dataclass
class Started:
    """A probe run under way."""

    spec: sb.SandboxSpec
    argv: tuple[str, ...]
    trace_file: Path | None
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    started: float
    reader: TraceReader | None = None

    @property
    def deadline(self) -> float:
        return self.started + self.spec.timeout


class TraceReader:
    """A trace file read while strace writes it: the whole lines go to a :class:`Parser` as they
    come (between the runner's waits), the unfinished last one is kept for the next read; so the
    trace of the longest probe is parsed while it runs, not after."""

    def __init__(self, path: Path, workdir: str) -> None:
        self.parser = Parser(workdir)
        self.tail = ""
        self.fh = open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115 - closed by finish/close

    def drain(self) -> None:
        data = self.fh.read()
        if data:
            lines = (self.tail + data).split("\n")
            self.tail = lines.pop()
            self.parser.feed(lines)

    def finish(self) -> Trace:
        self.drain()
        if self.tail:
            self.parser.feed([self.tail])
            self.tail = ""
        self.close()
        return self.parser.trace

    def close(self) -> None:
        self.fh.close()


def _limit(memory: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    return apply


def kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def start_probe(spec: sb.SandboxSpec, argv: Sequence[str], trace_file: Path | None,
                cpu: int | None = None) -> Started:
    """Start one probe in the sandbox, under strace unless ``trace_file`` is None; traced, and with
    ``cpu`` given, strace and everything it traces share that one CPU (see :func:`trace_cpus`)."""
    drop = sb.host_user()
    cmd = sb.bwrap_argv(spec, argv)
    if trace_file is not None:
        fd = os.open(trace_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            if drop is not None:
                os.fchown(fd, *drop)
        finally:
            os.close(fd)
        cmd = [sb.find_tool("strace"), *STRACE_ARGS, "-o", str(trace_file), *cmd]
        taskset = shutil.which("taskset", path="/usr/bin:/bin") if cpu is not None else None
        if taskset is not None:  # util-linux, as prlimit
            cmd = [taskset, "--cpu-list", str(cpu), *cmd]
    kwargs: dict[str, Any] = {}
    if drop is not None:
        kwargs.update(user=drop[0], group=drop[1], extra_groups=[])
    prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
    if prlimit is not None:  # util-linux (Essential in Debian): the limit set by exec, no Python in the child
        cmd = [prlimit, f"--as={spec.memory}:{spec.memory}", "--", *cmd]
    else:
        kwargs["preexec_fn"] = _limit(spec.memory)
    tmp = cleanup.tempdir()
    out = tempfile.TemporaryFile(dir=tmp)
    err = tempfile.TemporaryFile(dir=tmp)
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                                cwd="/", **kwargs)
    except BaseException:
        out.close()
        err.close()
        raise
    reader = None
    if trace_file is not None:
        try:
            reader = TraceReader(trace_file, spec.cwd)
        except BaseException:
            kill(proc)
            proc.wait()
            out.close()
            err.close()
            raise
    return Started(spec, tuple(argv), trace_file, proc, out, err, started, reader)


def finish_probe(run: Started, seconds: float, timed_out: bool) -> ProbeRun:
    """The result of a run that has ended (and been waited for): its output, exit code and trace."""
    with run.out, run.err:
        run.out.seek(0)
        run.err.seek(0)
        out, err = run.out.read(), run.err.read()
    code = run.proc.returncode
    if run.trace_file is None or run.reader is None:
        return ProbeRun(run.argv, code, out, err, seconds, timed_out, Trace(), traced=False)
    trace = run.reader.finish()
    os.unlink(run.trace_file)
    if trace.execs < 2 and not timed_out:
        why = (err.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        raise BilgeError(f"probe {shlex.join(run.argv)!r}: the sandbox did not start ({why})")
    return ProbeRun(run.argv, code, out, err, seconds, timed_out, trace)


def abandon(run: Started) -> None:
    """Kill a run (its whole process group) and release what it holds."""
    kill(run.proc)
    run.proc.wait()
    run.out.close()
    run.err.close()
    if run.reader is not None:
        run.reader.close()


def run_probe(spec: sb.SandboxSpec, argv: Sequence[str], trace_file: Path | None) -> ProbeRun:
    """Run one probe in the sandbox, under strace unless ``trace_file`` is None; its output, exit
    code and trace (empty without strace)."""
    return run_probes([(spec, tuple(argv), trace_file)], workers=1)[0]


def trace_cpus() -> list[int]:
    """The CPUs a traced run may be pinned to, strace and its tracees together: each system call the
    tracee makes stops it and wakes strace, and when the two run on different CPUs every stop waits for
    the other CPU to wake. On virtual machines, where waking an idle virtual CPU goes through the host,
    that made traced runs 2-4x slower than the same runs pinned to one CPU (a Python start-up with 4,300
    traced calls: 1.5-3.2 s free against 0.7-1.1 s pinned, 0.7 s untraced; see benchmarks/README.md).
    Empty where the affinity cannot be read: nothing is pinned."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


def default_workers() -> int:
    """How many probes run at once: one per CPU this process may use, at most MAX_WORKERS."""
    cpus = len(trace_cpus()) or os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS))


Job = tuple[sb.SandboxSpec, tuple[str, ...], "Path | None"]


def run_probes(jobs: Sequence[Job], *, workers: int | None = None,
               then: Callable[[int, ProbeRun], Path | None] | None = None) -> list[ProbeRun]:
    """Run every job (spec, argv, trace file or None), up to ``workers`` at a time (default
    :func:`default_workers`); the results in the jobs' order. ``then(index, run)`` is called as each run
    ends and may return a trace file: the job then runs again, traced, and that run is its result
    (``slim``'s verification runs untraced first, and traced only to explain a failure)."""
    batch = Batch(jobs, workers=workers, then=then)
    try:
        return batch.wait()
    except BaseException:
        batch.abandon()
        raise


class Batch:
    """The runs of :func:`run_probes`, advanced by the caller: :meth:`step` starts what may start and
    finishes what has ended (waiting at most ``timeout`` seconds for something to end), so that the
    caller can do other work between steps (``slim`` writes its archive while the verification
    runs); :meth:`wait` steps until every run is done. :meth:`abandon` kills what still runs."""

    def __init__(self, jobs: Sequence[Job], *, workers: int | None = None,
                 then: Callable[[int, ProbeRun], Path | None] | None = None) -> None:
        self.limit = max(1, workers or default_workers())
        self.then = then
        self.pending: deque[tuple[int, Job]] = deque(enumerate(jobs))
        self.running: dict[int, Started] = {}
        self.results: list[ProbeRun | BilgeError | None] = [None] * len(jobs)
        self.waiter = _Waiter()
        self.cpus = trace_cpus()  # a traced run takes the first not taken by another traced run
        self.pinned: dict[int, int] = {}

    def _cpu(self, i: int) -> int | None:
        free = [c for c in self.cpus if c not in self.pinned.values()]
        if not free:
            return None
        self.pinned[i] = free[0]
        return free[0]

    @property
    def done(self) -> bool:
        return not self.pending and not self.running

    def step(self, timeout: float) -> None:
        while self.pending and len(self.running) < self.limit:
            i, (spec, argv, trace) = self.pending.popleft()
            try:
                self.running[i] = start_probe(spec, argv, trace, self._cpu(i) if trace is not None else None)
            except BaseException:
                self.pinned.pop(i, None)
                raise
            self.waiter.add(i, self.running[i].proc.pid)
        if not self.running:
            return
        reading = [r.reader for r in self.running.values() if r.reader is not None]
        if reading:
            timeout = min(timeout, READ_EVERY)
        self.waiter.wait(min(timeout, min(r.deadline for r in self.running.values()) - time.perf_counter()))
        for reader in reading:
            reader.drain()
        now = time.perf_counter()
        for i, run in list(self.running.items()):
            ended = run.proc.poll() is not None
            if not ended and now < run.deadline:
                continue
            del self.running[i]
            self.pinned.pop(i, None)
            self.waiter.remove(i)
            if not ended:
                kill(run.proc)
                run.proc.wait()
            try:
                self.results[i] = result = finish_probe(run, now - run.started, not ended)
            except BilgeError as exc:
                self.results[i] = exc
                continue
            again = self.then(i, result) if self.then is not None and run.trace_file is None else None
            if again is not None:
                self.pending.appendleft((i, (run.spec, run.argv, again)))

    def wait(self) -> list[ProbeRun]:
        """Step until every run is done; the results in the jobs' order (the first error raised)."""
        while not self.done:
            self.step(3600.0)
        self.waiter.close()
        for r in self.results:
            if isinstance(r, BilgeError):
                raise r
        return [r for r in self.results if isinstance(r, ProbeRun)]

    def abandon(self) -> None:
        for run in self.running.values():
            abandon(run)
        self.running.clear()
        self.pinned.clear()
        self.pending.clear()
        self.waiter.close()


class _Waiter:
    """Waits until one of the runs ends or ``timeout`` passes: ``poll`` on their pidfds (Linux 5.3),
    or short sleeps where there are none."""

    def __init__(self) -> None:
        self._poll = select.poll()
        self._fds: dict[int, int] = {}
        self._sleep = not hasattr(os, "pidfd_open")

    def add(self, key: int, pid: int) -> None:
        if self._sleep:
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            self._sleep = True
            return
        self._fds[key] = fd
        self._poll.register(fd, select.POLLIN)

    def remove(self, key: int) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            self._poll.unregister(fd)
            os.close(fd)

    def wait(self, timeout: float) -> None:
        timeout = max(0.0, timeout)
        if self._sleep:
            time.sleep(min(timeout, 0.02))
        else:
            self._poll.poll(max(1, int(timeout * 1000) + 1) if timeout > 0 else 0)

    def close(self) -> None:
        for key in list(self._fds):
            self.remove(key)
