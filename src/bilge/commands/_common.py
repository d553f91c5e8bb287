"""Helpers every command shares: the demo image, the progress bar of long reads, warnings on stderr."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from bilge.errors import BilgeError, OutputError

if TYPE_CHECKING:
    from bilge.source.base import ImageSource


class TextOrJson(StrEnum):
    """The --format choices of the commands that print text or JSON only."""

    text = "text"
    json = "json"


def warn(message: str) -> None:
    """One ``bilge: warning: ...`` line on stderr."""
    sys.stderr.write(f"bilge: warning: {message}\n")


def demo_image_path() -> str:
    path = resources.files("bilge") / "data" / "demo.tar.gz"
    if not path.is_file():
        raise BilgeError("the demo image is not installed (src/bilge/data/demo.tar.gz missing; run demo/build.sh)")
    return str(path)


def progress_reporter(src: ImageSource, quiet: bool, *, total: int | None = None, also: ImageSource | None = None):
    """A rich progress bar on stderr for long reads (TTY only); returns (callback, stop). ``total``:
    the bytes to read when not ``src``'s compressed size; ``also``: a second source read too (diff)."""
    total = src.image.compressed_bytes if total is None else total
    shown = any(getattr(s, "shows_progress", False) for s in (src, also) if s is not None)
    if quiet or not sys.stderr.isatty() or total < 50_000_000 or shown:
        return None, lambda: None
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from bilge.format.common import console

    progress = Progress(TextColumn("reading layers"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                        console=console(stderr=True), transient=True)
    task = progress.add_task("read", total=total)
    progress.start()

    def advance(_layer, nbytes: int) -> None:
        progress.advance(task, nbytes)

    return advance, progress.stop


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """The one atomic writer of reports: a temporary file in the same directory (recorded by
    bilge.cleanup, so an interruption removes it, mode 0666 less the umask), renamed into place when
    complete -- never a partial file."""
    from bilge import cleanup

    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise OutputError(f"cannot write {path}: directory {directory} does not exist")
    try:
        fd, tmp = cleanup.mkstemp(directory, f".{target.name}.", ".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        cleanup.checkpoint()
        os.replace(tmp, target)
        cleanup.forget(tmp)
    except OSError as exc:
        cleanup.remove(tmp)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        cleanup.remove(tmp)
        raise


def write_output(path: str | None, text: str) -> None:
    """stdout (no PATH, or "-"), or PATH written atomically."""
    if not path or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_atomic(path, text)
