"""Temporary files and directories that must not outlive an interrupted run.

A writer creates its staging directory or temporary file here instead of calling :mod:`tempfile`
directly. The name is recorded *while SIGINT/SIGTERM/SIGHUP are held back* (the CLI's handler,
:func:`on_signal`, defers them inside :func:`signals_held`), so there is no moment at which the path
exists on disk but nobody knows about it: if a signal arrives anywhere later, the caller's own
``except``/``finally`` removes it, and :func:`remove_all` (called by the CLI when it is interrupted)
removes whatever a caller had no chance to. A path is forgotten once it has been renamed into place
or removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_LIVE: dict[str, None] = {}  # insertion-ordered set of paths this process created and still owns
_held = 0  # depth of signals_held() sections
_pending: int | None = None  # a signal that arrived inside one
_caught: int | None = None  # the first signal on_signal saw (its exception may have been swallowed)


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C (KeyboardInterrupt), so that every
    ``except BaseException``/``finally`` cleanup runs before the process exits with 128+N."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def on_signal(signum: int, _frame: object) -> None:
    """The handler the CLI installs for SIGINT/SIGTERM/SIGHUP: raise, unless inside signals_held()."""
    global _pending, _caught
    _caught = _caught or signum
    if _held:
        _pending = _pending or signum
        return
    raise _interrupt(signum)


def install_handlers() -> None:
    """Install :func:`on_signal` for SIGINT, SIGTERM and SIGHUP where their handlers are the defaults."""
    for sig in _SIGNALS:
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler, None):
                signal.signal(sig, on_signal)
        except (ValueError, OSError):  # not the main thread, or an unsupported signal
            pass


def checkpoint() -> None:
    """Raise the interruption again if a signal arrived earlier: Python drops an exception raised by a
    signal handler that happens to run inside a weakref callback or ``__del__`` (e.g. importlib's
    module-lock callbacks), so writers call this before they rename their output into place."""
    if _caught is not None:
        raise _interrupt(_caught)


def interrupted() -> int | None:
    """The signal that asked this run to stop, if any."""
    return _caught


@contextlib.contextmanager
def signals_held(*, discard: bool = False) -> Iterator[None]:
    """Defer SIGINT/SIGTERM/SIGHUP (as handled by :func:`on_signal`) until the section ends: a path
    created inside is recorded before the interruption is raised. With ``discard`` a signal that
    arrived meanwhile is dropped (the final cleanup: the process is ending anyway)."""
    global _held, _pending
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _pending is not None:
            signum, _pending = _pending, None
            if not discard:
                raise _interrupt(signum)


def tempdir() -> str:
    """``tempfile.gettempdir()``, found with signals held. Its first call in a process proves $TMPDIR
    writable by creating, writing and unlinking a file named with 8 random characters and no prefix;
    a signal between the create and the unlink would leave that file behind (seen in CI: SIGTERM sent
    the moment anything appeared in $TMPDIR). bilge asks for the temporary directory only here."""
    with signals_held():
        return tempfile.gettempdir()


def mkdtemp(directory: str | os.PathLike[str], prefix: str) -> Path:
    """``tempfile.mkdtemp`` in ``directory``, recorded for cleanup before any signal can intervene."""
    with signals_held():
        path = tempfile.mkdtemp(dir=directory, prefix=prefix)
        _LIVE[path] = None
    return Path(path)


def mkstemp(directory: str | os.PathLike[str], prefix: str, suffix: str = "") -> tuple[int, Path]:
    """``tempfile.mkstemp`` (O_CREAT|O_EXCL, unpredictable name), recorded for cleanup."""
    with signals_held():
        fd, path = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
        _LIVE[path] = None
    return fd, Path(path)


def forget(path: str | os.PathLike[str]) -> None:
    """The path is no longer ours to remove (renamed into place, or removed by the caller)."""
    _LIVE.pop(os.fspath(path), None)


def remove(path: str | os.PathLike[str]) -> None:
    """Remove a temporary file or directory tree (never following a symlink) and forget it."""
    name = os.fspath(path)
    try:
        if os.path.isdir(name) and not os.path.islink(name):
            shutil.rmtree(name, ignore_errors=True)
        else:
            os.unlink(name)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(name, ignore_errors=True)
    forget(name)


def remove_all() -> None:
    """Remove everything still recorded (newest first); called when the run is interrupted."""
    for name in reversed(list(_LIVE)):
        remove(name)
