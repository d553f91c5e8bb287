"""`bilge diff`'s progress: every stored byte it reads is reported once (the forked side's too), and
the bar shows on a terminal only, never with --quiet or when stderr is not a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from bilge.diffread import read_bytes, read_pair
from bilge.source import open_image
from bilge.testing import docker_archive, layer_tar

SRC = Path(__file__).resolve().parents[2] / "src"
BASE = [("dir", "etc"), ("file", "etc/os-release", b"ID=debian\n"), ("dir", "usr"), ("file", "usr/tool", b"T" * 5000)]


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_reports_each_stored_byte_read_once(tmp_path, jobs):
    shared = [layer_tar(BASE)]
    a_layers = [*shared, layer_tar([("file", "etc/a", b"a" * 900)])]
    b_layers = [*shared, layer_tar([("file", "etc/b", b"b" * 70_000)]), layer_tar([("file", "etc/c", b"c")])]
    docker_archive(tmp_path / "a.tar", a_layers)
    docker_archive(tmp_path / "b.tar", b_layers, compression="gzip")
    seen: list[int] = []
    with open_image(str(tmp_path / "a.tar")) as sa, open_image(str(tmp_path / "b.tar")) as sb:
        read_pair(sa, sb, jobs=jobs, progress=seen.append)
        stored_a = [lay.size for lay in sa.image.layers]
        stored_b = [lay.size for lay in sb.image.layers]
        total = read_bytes(sa.image, sb.image)
    # A's layers (the shared one read once, from A) and B's own two layers: one report per layer
    assert sorted(seen) == sorted([*stored_a, *stored_b[1:]])
    assert sum(seen) == total == sum(stored_a) + sum(stored_b[1:])


def run_on_terminal(*args: str) -> tuple[int, str]:
    """Run bilge with stderr on a pseudo-terminal; return (exit status, what the terminal got)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "bilge", *args], stdout=subprocess.DEVNULL, stderr=follower,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    out = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(leader)
    return proc.wait(timeout=120), out.decode(errors="replace")


def test_bar_on_a_terminal_only(tmp_path):
    big = layer_tar([("file", "blob", os.urandom(52_000_000))])  # over the bar's 50 MB threshold
    docker_archive(tmp_path / "a.tar", [big])
    docker_archive(tmp_path / "b.tar", [big, layer_tar([("file", "etc/x", b"x")])])
    a, b = str(tmp_path / "a.tar"), str(tmp_path / "b.tar")
    code, term = run_on_terminal("diff", a, b, "--no-history")
    assert code == 0 and "reading layers" in term
    code, term = run_on_terminal("diff", a, b, "-q")
    assert code == 0 and "reading layers" not in term
    proc = subprocess.run([sys.executable, "-m", "bilge", "diff", a, b], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert proc.returncode == 0 and proc.stderr == ""  # stderr not a terminal: no bar
