#!/usr/bin/env python3
"""When each phase of one bilge command ends, in wall-clock time from the end of the walk (issue 15).

usage: PYTHONPATH=src python3 benchmarks/report_timeline.py report IMAGE -o FILE [REPORT OPTIONS]
       PYTHONPATH=src python3 benchmarks/report_timeline.py --short secrets IMAGE --format json

Runs the bilge command line in this process with timestamps at the start and end of the walk and of
the report's phases after it, and prints them on stderr at ``atexit`` (so the interpreter's teardown
is not in them): the forked child's part shows as the wait for it (``tree wait``). ``--short`` prints
one line: interpreter start to walk, walk, walk end to ``atexit``. Run `report` and `secrets`
alternately to see where the report's extra time is.
"""

from __future__ import annotations

import atexit
import importlib
import sys
import time
from typing import Any

T0 = time.monotonic()
MARKS: list[tuple[str, float]] = []
PHASES = (
    ("bilge.fs", "walk_image", "walk"),
    ("bilge.forked", "beside", "fork"),
    ("bilge.secrets", "build_report", "secrets report"),
    ("bilge.analyze", "analyze", "analyze"),
    ("bilge.commands.report", "_lint_doc", "lint"),
    ("bilge.deps", "closure", "closure"),
    ("bilge.forked", "Beside.result", "tree wait"),
    ("bilge.format.html", "report_document", "documents"),
    ("bilge.format.html", "render_html", "html"),
    ("bilge.commands._common", "write_output", "write"),
)


def _wrap(module: str, name: str, label: str) -> None:
    owner: Any = importlib.import_module(module)
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    inner = getattr(owner, attr)

    def timed(*args: Any, **kwargs: Any) -> Any:
        MARKS.append((f"{label} start", time.monotonic()))
        try:
            return inner(*args, **kwargs)
        finally:
            MARKS.append((f"{label} end", time.monotonic()))

    setattr(owner, attr, timed)


def _show(short: bool) -> None:
    now = time.monotonic()
    starts = [t for label, t in MARKS if label == "walk start"]
    ends = [t for label, t in MARKS if label == "walk end"]
    if not ends:
        return
    if short:
        sys.stderr.write(f"{sys.argv[1]:8} start->walk {starts[-1] - T0:.3f}  walk {ends[-1] - starts[-1]:.3f}  "
                         f"walk->atexit {now - ends[-1]:.3f}\n")
        return
    for label, t in MARKS + [("atexit", now)]:
        if not label.endswith(" start"):
            sys.stderr.write(f"{label.removesuffix(' end'):16} {t - ends[-1]:+.3f}\n")


def main() -> None:
    short = "--short" in sys.argv[1:2]
    if short:
        del sys.argv[1]
    import bilge.cli

    for phase in PHASES:
        _wrap(*phase)
    atexit.register(_show, short)
    sys.argv = ["bilge", *sys.argv[1:]]
    bilge.cli.main()


if __name__ == "__main__":
    main()
