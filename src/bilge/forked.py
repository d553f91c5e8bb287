"""Run a pure computation in a forked child while this process goes on: the second core after a walk.

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

Forking is only done on Linux and only while this process runs a single thread (forking a threaded
process can deadlock the child, and Python 3.12+ warns about it); otherwise the call runs in-process
when its result is asked for. ``BILGE_NO_FORK=1`` turns it off.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _can_fork() -> bool:
    return (sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1
            and os.environ.get("BILGE_NO_FORK", "") in ("", "0"))


class Beside(Generic[T]):
    """The pending result of :func:`beside`: :meth:`result` once, or :meth:`close` to drop it."""

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self.pid: int | None = None  # the child, while it has not been reaped
        self._fd: int | None = None  # the read end of its pipe
        if _can_fork():
            self._fork()

    def _fork(self) -> None:
        r, w = os.pipe()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            pid = os.fork()
        except OSError:  # EAGAIN, ENOMEM: compute in-process instead
            os.close(r)
            os.close(w)
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            return
        if pid == 0:  # the child: never returns
            status = 1
            try:
                for sig in _SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
                os.close(r)
                gc.disable()  # short-lived: a full collection would only touch (and copy) shared pages
                data = pickle.dumps(self._fn(*self._args), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(w, "wb", closefd=True) as out:
                    out.write(data)
                status = 0
            except BaseException:  # noqa: BLE001 - the parent computes it again and reports the error
                pass
            finally:
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        os.close(w)
        self.pid, self._fd = pid, r

    def result(self) -> T:
        """The child's result, or the same call computed here when the child gave none."""
        data = b""
        status = -1
        if self.pid is not None:
            try:
                data = self._read()
            except BaseException:
                self._reap(kill=True)
                raise
            status = self._reap()
        if status == 0 and data:
            try:
                return pickle.loads(data)  # noqa: S301 - our own child's output, through our own pipe
            except Exception:  # noqa: BLE001 - a torn write: fall back
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
        if pid is None:
            return -1
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
