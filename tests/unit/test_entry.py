"""A signal that arrives while the CLI is still being imported ends the run like one arriving later:
exit 128+N (130 for Ctrl-C), no traceback (the console script is ``bilge.entry:run``)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# The signal is raised by the import of typer, which bilge.cli imports first: deterministic, and
# the same path as a Ctrl-C during a slow start-up.
PROGRAM = """
import builtins, os, signal, sys
sys.argv = ["bilge", "--help"]
import bilge.entry
real_import = builtins.__import__
def importing(name, *args, **kwargs):
    if name == "typer":
        os.kill(os.getpid(), {sig})
    return real_import(name, *args, **kwargs)
builtins.__import__ = importing
bilge.entry.run()
print("not reached")
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_during_cli_import_exits_cleanly(sig):
    p = subprocess.run([sys.executable, "-c", PROGRAM.format(sig=int(sig))], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert p.returncode == 128 + sig, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and "not reached" not in p.stdout, p.stderr


def test_console_script_is_the_entry_module():
    text = (SRC.parent / "pyproject.toml").read_text()
    assert 'bilge = "bilge.entry:run"' in text
    p = subprocess.run([sys.executable, "-m", "bilge", "--version"], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert p.returncode == 0 and p.stdout.strip(), p.stderr


def test_the_process_ends_without_scanning_the_commands_objects():
    """At exit, what the command built is frozen, so the interpreter's last collection skips it."""
    program = ("import atexit, gc, sys\n"
               "atexit.register(lambda: print('frozen', gc.get_freeze_count()))\n"
               "sys.argv = ['bilge', '--version']\n"
               "import bilge.entry\n"
               "bilge.entry.run()\n")
    p = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert p.returncode == 0, p.stderr
    frozen = int(p.stdout.rsplit("frozen", 1)[1])
    assert frozen > 10_000, p.stdout  # the CLI's modules and objects, at least
