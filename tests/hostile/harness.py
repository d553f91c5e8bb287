"""Run bilge as a user would, on a hostile input, and record everything that the promise is about.

``run_bilge(args, workdir)`` starts ``python -m bilge ARGS`` with a private TMPDIR, a time limit and
an address-space limit, optionally sends a signal once a condition holds, and returns an
:class:`Outcome`: exit code, output, wall time, the child's own peak RSS (``os.wait4``), and what it
left in TMPDIR. ``Victims`` plants files around the output and checks they are untouched.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ERROR_PREFIX = "bilge: error: "


@dataclass
class Outcome:
    args: Sequence[str]
    code: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float
    peak_rss: int  # bytes, of the bilge process alone
    tmp_left: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"bilge {' '.join(map(str, self.args))}: exit {self.code}, {self.seconds:.1f}s, "
                f"{self.peak_rss / 2**20:.0f} MiB\nstderr: {self.stderr[-2000:]}")


def run_bilge(args: Sequence[str | os.PathLike[str]], workdir: Path, *, timeout: float = 60,
              memory_limit: int = 2 << 30, stdin: int | None = subprocess.DEVNULL,
              send_signal: tuple[int, Callable[[], bool]] | None = None,
              env: dict[str, str] | None = None) -> Outcome:
    """Run bilge; kill it after ``timeout`` s. ``send_signal=(SIG, ready)`` sends SIG once ready()."""
    tmpdir = workdir / "private-tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    e = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "BILGE_DEBUG")}
    e.update({"PYTHONPATH": str(SRC), "NO_COLOR": "1", "TMPDIR": str(tmpdir), "COLUMNS": "120", **(env or {})})

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    argv = [sys.executable, "-m", "bilge", *map(os.fspath, args)]
    t0 = time.monotonic()
    out_path, err_path = workdir / ".stdout", workdir / ".stderr"
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=stdin, env=e, preexec_fn=limits)
        code: int | None = None
        sent = False
        usage = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                proc.returncode = code
                break
            if send_signal and not sent and send_signal[1]():
                proc.send_signal(send_signal[0])
                sent = True
            if time.monotonic() - t0 > timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                break
            time.sleep(0.005)
        seconds = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stdout = out.read(4 << 20).decode("utf-8", "replace")
        stderr = err.read(4 << 20).decode("utf-8", "replace")
    out_path.unlink()
    err_path.unlink()
    left = sorted(str(p.relative_to(tmpdir)) for p in tmpdir.rglob("*"))
    return Outcome(list(args), code, stdout, stderr, seconds, usage.ru_maxrss * 1024 if usage else 0, left)


def assert_clean_error(o: Outcome, *, contains: str | None = None, max_seconds: float = 30,
                       max_rss: int = 512 << 20) -> None:
    """Exit 2 with exactly one bounded ``bilge: error:`` line; no traceback; bounded; no leftovers."""
    assert o.code == 2, o.describe()
    lines = o.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), o.describe()
    assert len(lines[0]) <= 1000 + len(ERROR_PREFIX) + 2, o.describe()
    assert "Traceback" not in o.stderr, o.describe()
    if contains is not None:
        assert contains in lines[0], o.describe()
    assert_bounded(o, max_seconds=max_seconds, max_rss=max_rss)


def assert_bounded(o: Outcome, *, max_seconds: float = 30, max_rss: int = 512 << 20) -> None:
    assert o.code is not None and o.code >= 0, f"killed at the time limit: {o.describe()}"
    assert o.seconds <= max_seconds, o.describe()
    assert o.peak_rss <= max_rss, o.describe()
    assert o.tmp_left == [], f"left in TMPDIR: {o.tmp_left}\n{o.describe()}"


class Victims:
    """Files planted where a careless writer could reach them; ``check()`` says they are untouched."""

    def __init__(self, root: Path, names: Sequence[str] = ("victim.txt", "etc-passwd")) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.paths = [root / n for n in names]
        for p in self.paths:
            p.write_text(f"precious {p.name}\n")
        self.before = self._state()

    def _state(self) -> dict[str, str]:
        state = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_symlink():
                state[str(p)] = "-> " + os.readlink(p)
            elif p.is_file():
                state[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                state[str(p)] = "dir"
        return state

    def check(self) -> None:
        assert self._state() == self.before, "a file outside the output changed"


SIGNALS = (signal.SIGTERM, signal.SIGINT)
