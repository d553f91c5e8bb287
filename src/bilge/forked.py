"""Forked children that compute beside this process and send their result back through a pipe.

:func:`spawn` and :func:`reap` are the one way bilge forks (``bilge diff`` reads its second image in a
child; ``bilge report`` makes its size tree in one). :func:`beside` is the simple case: a pure call.

After the walk of an image, what is left (``bilge report``: analyze, the size tree, lint, the closure)
is Python work on one core while the other idles. :func:`beside` forks a child that computes one of
those on a copy-on-write view of the merged filesystem and sends back the pickled result through a
pipe; the parent computes the rest meanwhile and then collects it.

The child is made to be harmless:

- it is forked with SIGINT/SIGTERM/SIGHUP blocked and sets them back to their default action before
  it unblocks them, so a signal kills it outright instead of raising :class:`~bilge.cleanup.Terminated`
  into the parent's stack (whose ``finally`` blocks would remove the parent's temporary files);
- it leaves with :func:`os._exit`: no ``atexit`` hook, no flush of the parent's buffered output, no
  cleanup of anything the parent owns; it writes nothing but its pipe;
- the parent always gets the right answer: when the child cannot be forked, fails, or dies, the parent
  computes the same call itself (an exception then surfaces where it would have without the fork).

Forking is only done on Linux, only while this process runs a single thread (forking a threaded
process can deadlock the child, and Python 3.12+ warns about it), and only when memory allows it: a
child that walks the merged filesystem touches the reference counts of its objects, which copies the
pages holding them (~57 MB of a 145 MB process for the 1.2 GB benchmark image's size tree), so
:func:`beside` forks only when the machine, and this process's cgroup, have at least twice this
process's resident size free. Otherwise the call runs in-process when its result is asked for.
``BILGE_NO_FORK=1`` turns it off.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, Generic, TypeVar

T = TypeVar("T")

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _can_fork() -> bool:
    if not (sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1
            and os.environ.get("BILGE_NO_FORK", "") in ("", "0")):
        return False
    free = available_memory()
    return free is not None and free >= 2 * resident_memory()


def resident_memory() -> int:
    """This process's resident set, in bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cgroup_headroom() -> int | None:
    """What this process's memory cgroup still allows, when it sets a limit (cgroup v2 or v1)."""
    try:
        with open("/proc/self/cgroup") as fh:
            lines = [ln.rstrip("\n").split(":", 2) for ln in fh]
    except OSError:
        return None
    places = []  # (limit file, usage file)
    for _, controllers, rel in (ln for ln in lines if len(ln) == 3):
        rel = rel.rstrip("/")
        if controllers == "":
            places += [(f"/sys/fs/cgroup{d}/memory.max", f"/sys/fs/cgroup{d}/memory.current") for d in (rel, "")]
        elif "memory" in controllers.split(","):
            places += [(f"/sys/fs/cgroup/memory{d}/memory.limit_in_bytes",
                        f"/sys/fs/cgroup/memory{d}/memory.usage_in_bytes") for d in (rel, "")]
    for limit_file, usage_file in places:
        try:
            with open(limit_file) as fh:
                limit = fh.read().strip()
            if limit == "max" or int(limit) >= 1 << 62:  # no limit (v1 writes a huge number)
                continue
            with open(usage_file) as fh:
                return int(limit) - int(fh.read())
        except (OSError, ValueError):
            continue
    return None


def available_memory() -> int | None:
    """Bytes that could still be allocated: MemAvailable, or the cgroup's headroom when smaller."""
    free = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        return None
    room = _cgroup_headroom()
    return room if free is None or (room is not None and room < free) else free


def spawn(child: Callable[[BinaryIO], None], *, close_in_child: Sequence[int] = ()) -> tuple[int, int]:
    """Fork a child that runs ``child(out)``, ``out`` the write end of a new pipe, and leaves with
    :func:`os._exit`: status 0 when ``child`` returned, 1 when it raised. Returns ``(pid, read end)``;
    raises OSError when the fork fails. ``close_in_child``: the parent's descriptors the child must not
    hold (the other ends of pipes between the two).

    A signal that arrives around the fork is held twice: the kernel holds it for this thread
    (``pthread_sigmask``; another thread may still take it) and bilge's handler defers its exception
    (:func:`bilge.cleanup.signals_held`). It is raised once the child exists and is known, and the
    child is killed and reaped first. The signal mask is restored on every path: a mask left blocked
    would be inherited by every process this one starts later."""
    from bilge import cleanup

    r, w = os.pipe()
    pid = 0
    try:
        with cleanup.signals_held():
            old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
            try:
                pid = os.fork()
                if pid == 0:
                    _child_main(child, old, r, w, close_in_child)  # never returns
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
    except BaseException:
        os.close(r)
        os.close(w)
        if pid:
            reap(pid, kill=True)
        raise
    os.close(w)
    return pid, r


def _child_main(child: Callable[[BinaryIO], None], mask: Any, r: int, w: int, close: Sequence[int]) -> None:
    status = 1
    try:
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fd in (r, *close):
            os.close(fd)
        gc.disable()  # short-lived: a full collection would only touch (and copy) shared pages
        with os.fdopen(w, "wb", closefd=True) as out:
            child(out)
        status = 0
    except BaseException:  # noqa: BLE001, S110 - the status says it; the parent decides what to do
        pass
    finally:
        os._exit(status)


def reap(pid: int, *, kill: bool = False) -> int:
    """Wait for a child of :func:`spawn` (after SIGKILL with ``kill``); its exit code (-N: killed by
    signal N), or -1 when it was reaped already."""
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return -1
        return os.waitstatus_to_exitcode(status)


class Beside(Generic[T]):
    """The pending result of :func:`beside`: :meth:`result` once, or :meth:`close` to drop it."""

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self.pid: int | None = None  # the child, while it has not been reaped
        self._fd: int | None = None  # the read end of its pipe
        if _can_fork():
            try:
                self.pid, self._fd = spawn(self._child)
            except OSError:  # EAGAIN, ENOMEM: computed in-process when asked for
                pass

    def _child(self, out: BinaryIO) -> None:
        out.write(pickle.dumps(self._fn(*self._args), protocol=pickle.HIGHEST_PROTOCOL))

    def result(self) -> T:
        """The child's result, or the same call computed here when the child gave none."""
        data = b""
        status = -1
        if self.pid is not None:
            try:
                data = self._read()
            except BaseException:
                self.close()
                raise
            status = self._reap()
        if status == 0 and data:
            try:
                return pickle.loads(data)  # noqa: S301 - our own child's output, through our own pipe
            except Exception:  # noqa: BLE001, S110 - a torn write: computed here instead
                pass
        return self._fn(*self._args)

    def _read(self) -> bytes:
        assert self._fd is not None
        chunks = []
        with os.fdopen(self._fd, "rb", closefd=True) as pipe:
            self._fd = None
            while chunk := pipe.read(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks)

    def _reap(self, kill: bool = False) -> int:
        pid, self.pid = self.pid, None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return -1 if pid is None else reap(pid, kill=kill)

    def close(self) -> None:
        """Kill and reap the child if its result was never collected (an error in the parent)."""
        self._reap(kill=True)

    def __enter__(self) -> Beside[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def beside(fn: Callable[..., T], *args: Any) -> Beside[T]:
    """Start ``fn(*args)`` in a forked child (see the module's docstring); collect it with ``.result()``.

    ``fn`` must be pure (its effects in the child are lost), and its result picklable."""
    return Beside(fn, args)
