"""The options every command that reads an image shares, for images that live in a registry or the
Docker engine: ``--creds``, ``--creds-file``, ``--tls-verify``, ``--cache``/``--cache-dir``/``--no-cache``,
``--retry-times``. One decorator adds them to a command; the command gets a :class:`SourceArgs` and
opens its image with :meth:`SourceArgs.open` (which also draws per-layer download progress on a TTY
and says on stderr where a bare ``NAME:TAG`` was found)::

    @app.command("x")
    @with_source_options
    def x_cmd(reference: str = ..., source_args: SourceArgs = SOURCE_ARGS) -> None:
        with source_args.open(reference, platform=platform, verify=True, quiet=quiet) as src:
            ...
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from bilge.errors import BilgeError
from bilge.source.base import Credentials, ImageSource, SourceOptions

DEFAULT_RETRIES = 3


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bilge"


def _tls(value: str | None) -> bool:
    if value is None:
        return True
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise BilgeError(f"--tls-verify {value!r}: expected true or false")


@dataclass(frozen=True)
class SourceArgs:
    creds: str | None = None
    creds_file: str | None = None
    tls_verify: str | None = None
    cache: bool = False
    cache_dir: str | None = None
    no_cache: bool = False
    retry_times: int = DEFAULT_RETRIES

    def credentials(self) -> Credentials | None:
        from bilge.remote.credentials import parse_creds, read_creds_file

        if self.creds and self.creds_file:
            raise BilgeError("give --creds or --creds-file, not both")
        if self.creds is not None:
            auth = parse_creds(self.creds, "--creds")
        elif self.creds_file is not None:
            auth = read_creds_file(self.creds_file)
        else:
            return None
        return Credentials(auth.username, auth.password, origin=auth.origin)

    def resolved_cache_dir(self) -> str | None:
        """The blob cache is off unless asked for: --cache, --cache-dir DIR or $BILGE_CACHE_DIR."""
        if self.no_cache:
            return None
        if self.cache_dir:
            return self.cache_dir
        if os.environ.get("BILGE_CACHE_DIR"):
            return os.environ["BILGE_CACHE_DIR"]
        return str(default_cache_dir()) if self.cache else None

    def options(self, quiet: bool = False) -> SourceOptions:
        if self.retry_times < 0:
            raise BilgeError("--retry-times must be 0 or more")
        progress = StderrProgress() if not quiet and _stderr_is_tty() else None
        return SourceOptions(credentials=self.credentials(), tls_verify=_tls(self.tls_verify),
                             cache_dir=self.resolved_cache_dir(), retries=self.retry_times,
                             notice=_notice, progress=progress)

    def open(self, reference: str, *, platform: Any = None, verify: bool = True, quiet: bool = False) -> ImageSource:
        from bilge.source import open_image

        opts = self.options(quiet)
        src = open_image(reference, platform=platform, verify=verify, options=opts)
        if isinstance(opts.progress, StderrProgress) and src.image.transport in ("docker", "docker-daemon"):
            return _WithProgress(src, opts.progress)
        return src


SOURCE_ARGS = SourceArgs()

_OPTIONS = [
    ("creds", typer.Option(None, "--creds", metavar="USER:PASS",
                           help="Registry credentials (docker://); prefer --creds-file or a login file.")),
    ("creds_file", typer.Option(None, "--creds-file", metavar="FILE",
                                help="A file whose first line is USER:PASS (docker://).")),
    ("tls_verify", typer.Option(None, "--tls-verify", metavar="BOOL",
                                help="--tls-verify=false allows plain HTTP and unverified TLS (loopback "
                                     "registries always may).")),
    ("cache", typer.Option(False, "--cache", help=f"Keep downloaded blobs in {default_cache_dir()} "
                                                   "(verified on every read).")),
    ("cache_dir", typer.Option(None, "--cache-dir", metavar="DIR", help="Keep downloaded blobs in DIR.")),
    ("no_cache", typer.Option(False, "--no-cache", help="No blob cache, even with $BILGE_CACHE_DIR.")),
    ("retry_times", typer.Option(DEFAULT_RETRIES, "--retry-times", metavar="N",
                                 help="Retries after a 429, a 5xx or a dropped connection.")),
]


def with_source_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared source options to a typer command that takes ``source_args: SourceArgs``."""
    sig = inspect.signature(fn)
    if "source_args" not in sig.parameters:
        raise TypeError(f"{fn.__name__} must take a source_args parameter")
    params = [p for p in sig.parameters.values() if p.name != "source_args"]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt,
                               annotation=(bool if name in ("cache", "no_cache") else int if name == "retry_times"
                                           else str | None))
             for name, opt in _OPTIONS]
    positional = [p for p in params if p.kind not in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)]
    keyword = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name, _ in _OPTIONS if name in kwargs}
        return fn(*args, source_args=SourceArgs(**values), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*positional, *keyword, *extra])  # type: ignore[attr-defined]
    return wrapper


# ---------------------------------------------------------------------------------------------
# stderr: notices and per-layer download progress


def _notice(message: str) -> None:
    sys.stderr.write(f"bilge: {message}\n")
    sys.stderr.flush()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class StderrProgress:
    """One row per blob being downloaded (bytes, rate), on stderr, once a pull takes more than a moment."""

    DELAY = 0.5

    def __init__(self) -> None:
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._pending: dict[str, tuple[str, int | None, int]] = {}
        self._started = time.monotonic()

    def _live(self) -> Any:
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            from bilge.format.common import console

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                      TransferSpeedColumn(), console=console(stderr=True), transient=True)
            self._progress.start()
        return self._progress

    def begin(self, key: str, label: str, total: int | None) -> None:
        self._pending[key] = (label, total, 0)

    def advance(self, key: str, nbytes: int) -> None:
        task = self._tasks.get(key)
        if task is None:
            label, total, done = self._pending.get(key, (key[:19], None, 0))
            done += nbytes
            if time.monotonic() - self._started < self.DELAY:
                self._pending[key] = (label, total, done)
                return
            self._pending.pop(key, None)
            self._tasks[key] = self._live().add_task(label, total=total, completed=done)
            return
        self._progress.advance(task, nbytes)

    def end(self, key: str) -> None:
        self._pending.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            self._progress.remove_task(task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class _WithProgress(ImageSource):
    """The opened source, plus the progress display to stop when it closes."""

    def __init__(self, inner: ImageSource, progress: StderrProgress) -> None:
        self.inner, self.progress = inner, progress
        self.image, self.verify = inner.image, inner.verify
        self.shows_progress = True
        self.blob_origin = getattr(inner, "blob_origin", None)

    def open_layer_blob(self, layer):  # type: ignore[no-untyped-def]
        return self.inner.open_layer_blob(layer)

    def open_blob(self, digest: str):  # type: ignore[no-untyped-def]
        return self.inner.open_blob(digest)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.progress.stop()
