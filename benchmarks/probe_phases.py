"""Where `bilge slim --probe` spends its time: one in-process run, each phase timed.

    python benchmarks/probe_phases.py ARCHIVE --probe 'CMD' [--probe ...] [-o OUT] [--profile FILE]

ARCHIVE is what benchmarks/probe_bench.py saved (``benchmarks/work/probe/rails.tar``). The phases
are found by wrapping bilge's own functions (nothing in bilge is changed for this): the one read of
the layers that materialises the tree, each probe under bwrap+strace (the run, then the parse of its
trace), the keep-set plan (closure included), the slim tree and the verification runs, the per-origin
count, the squash plan and the archive write. ``--profile`` writes a cProfile of the whole run too.
Prints a table (wall seconds, and this process's CPU seconds: the load of the shared machine
stretches the first, not the second) and the total wall time with the interpreter's start-up excluded.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

SPENT: dict[str, float] = defaultdict(float)
CPU: dict[str, float] = defaultdict(float)  # this process's CPU (all threads), children excluded
_ACTIVE: list[str] = []


def timed(module: object, name: str, label: str, nested: bool = False) -> None:
    fn = getattr(module, name)

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        if _ACTIVE and not nested:  # counted in the outer phase only
            return fn(*a, **kw)
        _ACTIVE.append(label)
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **kw)
        finally:
            SPENT[label] += time.perf_counter() - t
            CPU[label] += time.process_time() - c
            _ACTIVE.pop()

    setattr(module, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("archive")
    ap.add_argument("--probe", action="append", required=True)
    ap.add_argument("-o", "--output", default=None)
    ap.add_argument("--profile", default=None)
    args = ap.parse_args()

    import importlib

    from bilge.probe import session as ses
    from bilge.probe import trace as tr

    sl = importlib.import_module("bilge.rewrite.slim")  # the module: bilge.rewrite.slim is its function
    from bilge.sink import parse_output
    from bilge.source import open_image

    timed(ses, "materialise", "materialise (read + write tree)")
    timed(tr.Parser, "feed", "  of which strace parse", nested=True)
    timed(ses.Session, "trace", "probes under strace (wall, incl. parse)")
    timed(sl, "plan_slim", "plan_slim (keep set + closure)")
    timed(ses.Session, "start_verify", "verify: slim tree, runs started")
    timed(ses.Session, "close", "remove the trees")
    timed(sl, "kept_by_origin", "kept_by_origin")
    timed(sl, "plan_squash", "plan_squash")
    timed(sl, "write_image", "write archive (verify runs alongside)")
    timed(ses.Session, "finish_verify", "  of which waiting for the verify runs", nested=True)

    from bilge.probe import ProbeOptions, parse_probes

    opts = ProbeOptions(parse_probes(args.probe))
    output = parse_output(f"docker-archive:{args.output}:probe-phases:slim") if args.output else None
    prof = cProfile.Profile() if args.profile else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    with open_image(args.archive) as src:
        result, _plan = sl.slim(src, output, [], probe=opts, dry_run=output is None)
    if prof:
        prof.disable()
        prof.dump_stats(args.profile)
    total = time.perf_counter() - t
    d = result.details.get("probe", {})
    nested = ("  of which strace parse", "  of which waiting for the verify runs")
    print(f"{'phase':42} {'wall s':>7} {'CPU s':>7}")
    for label, s in SPENT.items():
        print(f"{label:42} {s:7.2f} {CPU.get(label, 0.0):7.2f}")
    accounted = sum(v for k, v in SPENT.items() if k not in nested)
    print(f"{'other (config, secrets, report)':42} {total - accounted:7.2f}")
    print(f"{'total (in process)':42} {total:7.2f}   ok={d.get('ok')}, verify_seconds {d.get('verify_seconds')}")


if __name__ == "__main__":
    main()
