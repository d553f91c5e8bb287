#!/usr/bin/env python3
"""Where `bilge report` spends CPU beyond `bilge secrets`: one command, in-process, per phase.

usage: PYTHONPATH=src python3 benchmarks/report_phases.py report IMAGE -o FILE [REPORT OPTIONS]
       PYTHONPATH=src python3 benchmarks/report_phases.py secrets IMAGE --format json

Runs the bilge command line in this process with timers around the phases the report adds to the
secrets scan, and prints on stderr the CPU seconds of each: process CPU (``time.process_time``: every
thread, the layer hashing thread included) for whole phases, the calling thread's CPU
(``time.thread_time``) for each visitor of the walk, and the garbage collector's passes by generation.
``import cli`` is the CLI's import (the same for every command); ``TOTAL`` is everything from
interpreter start-up on. Run the two commands alternately and subtract (issue 15).
"""

from __future__ import annotations

import collections
import gc
import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

T_START = time.process_time()
ACC: dict[str, float] = collections.defaultdict(float)

# (module, attribute, label, clock): the phases and visitors the report adds to the secrets scan
PHASES: tuple[tuple[str, str, str, Callable[[], float]], ...] = (
    ("bilge.fs", "walk_image", "walk (all visitors)", time.process_time),
    ("bilge.secrets.scanner", "FileVisitor.__call__", "  visitor: secrets", time.thread_time),
    ("bilge.deps.view", "ElfCollector.__call__", "  visitor: deps ELF", time.thread_time),
    ("bilge.dockerfile.cost", "PackageDBCollector.__call__", "  visitor: lint packages", time.thread_time),
    ("bilge.fs", "MergedFS.apply", "  merged filesystem", time.thread_time),
    ("bilge.analyze", "analyze", "analyze", time.process_time),
    ("bilge.fstree", "build_tree", "size tree", time.process_time),
    ("bilge.commands.report", "_lint_setup", "lint: Dockerfile", time.process_time),
    ("bilge.commands.report", "_lint_doc", "lint: image", time.process_time),
    ("bilge.deps", "closure", "deps closure", time.process_time),
    ("bilge.format.html", "report_document", "JSON documents", time.process_time),
    ("bilge.format.html", "render_html", "HTML", time.process_time),
    ("bilge.commands.report", "_emit", "write (documents + HTML + file)", time.process_time),
)


def _wrap(module: str, name: str, label: str, clock: Callable[[], float]) -> None:
    owner: Any = importlib.import_module(module)
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    inner = getattr(owner, attr)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = clock()
        try:
            return inner(*args, **kwargs)
        finally:
            ACC[label] += clock() - t

    setattr(owner, attr, timed)


def _gc_timer() -> None:
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            ACC[f"gc generation {info['generation']}"] += time.thread_time() - started[0]

    gc.callbacks.append(callback)


def main() -> None:
    t0 = time.process_time()
    import bilge.cli

    ACC["import cli"] = time.process_time() - t0
    for phase in PHASES:
        _wrap(*phase)
    _gc_timer()
    sys.argv = ["bilge", *sys.argv[1:]]
    try:
        bilge.cli.main()
    except SystemExit:
        pass
    ACC["TOTAL"] = time.process_time() - T_START
    for label, seconds in ACC.items():
        sys.stderr.write(f"{label:34} {seconds:7.3f}\n")


if __name__ == "__main__":
    main()
