"""Consoles that respect TTY and NO_COLOR, shared by every text renderer (sizes: :mod:`bilge.units`)."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from bilge.units import human_bytes

__all__ = ["console", "human_bytes", "use_color"]


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
