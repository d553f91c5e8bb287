"""Helpers shared by every formatter: sizes, consoles that respect TTY and NO_COLOR."""

from __future__ import annotations

import os
import sys

from rich.console import Console


def human_bytes(n: int | float) -> str:
    """Decimal units, like docker and dive: 1.2 GB, 45.2 MB, 6.4 kB, 512 B."""
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            if unit == "B":
                return f"{sign}{int(n)} B"
            return f"{sign}{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def use_color(stream=None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Console(Console):
    def on_broken_pipe(self) -> None:  # rich would exit 1; let the CLI decide (a closed pipe is not an error)
        self.quiet = True
        raise BrokenPipeError


def console(stream=None, *, stderr: bool = False) -> Console:
    """A rich console: colour only on a TTY and never with NO_COLOR; wide enough when piped."""
    stream = stream or (sys.stderr if stderr else sys.stdout)
    color = use_color(stream)
    return _Console(
        file=stream,
        force_terminal=color,
        no_color=not color,
        color_system="auto" if color else None,
        highlight=False,
        soft_wrap=False,
        width=None if color else 120,
        emoji=False,
    )
