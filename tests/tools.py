"""The one way tests and benchmarks run an external program (a "peer": lddtree, skopeo, umoci, ...).

Why this exists: the peers come from Debian's packages, and some of them are scripts whose shebang
is ``#!/usr/bin/env python3`` (pax-utils' ``lddtree`` needs Debian's ``python3-pyelftools``). On a
machine whose first ``python3`` on PATH is not Debian's (pyenv, a venv, /usr/local), such a script
runs under the wrong interpreter and fails on import. So every peer is run

* with a PATH that puts Debian's directories first (``/usr/sbin:/usr/bin:/sbin:/bin``), so that
  whatever the program starts in turn (``env python3``, helpers) is Debian's too, and
* for a script with an ``env`` shebang, with that interpreter resolved on the same Debian-first PATH
  and named explicitly on the command line.

``tests/unit/test_tools.py`` checks that no test or benchmark calls a peer by bare name instead.

Use::

    from tests.tools import argv, run_tool, tool_env, which

    run_tool("lddtree", "-R", root, "-l", prog).stdout
    subprocess.run([*argv("skopeo"), "inspect", ref], env=tool_env(), ...)
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEBIAN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")

# Programs installed outside Debian's directories by .ci/run, in their own virtualenvs
# (comparison peers that must never become dependencies of bilge).
EXTRA_LOCATIONS = {
    "docker-squash": ("/opt/docker-squash-venv/bin/docker-squash",),
}

# Every external program the tests and benchmarks run, with the Debian package (or .ci/run step)
# that provides it. .ci/run installs each of these and prints their versions; test_tools.py checks
# that none of them is called by bare name. A new peer is one more line here.
PEERS: dict[str, str] = {
    "lddtree": "pax-utils",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "buildah": "buildah",
    "mmdebstrap": "mmdebstrap",
    "docker-squash": ".ci/run (venv /opt/docker-squash-venv)",
    "tar": "tar",
    "gzip": "gzip",
    "zstd": "zstd",
    "gcc": "gcc",
    "musl-gcc": "musl-tools",
    "readelf": "binutils",
    "ld": "binutils",
    "ldconfig": "libc-bin",
    "chroot": "coreutils",
    "unshare": "util-linux",
    "realpath": "coreutils",
    "docker-registry": "docker-registry",
    "htpasswd": "apache2-utils",
    "chromium": "chromium",
    "firefox-esr": "firefox-esr",
    "bwrap": "bubblewrap",  # what bilge slim --probe runs (its sandbox); listed for the CI log
    "strace": "strace",  # what bilge slim --probe traces the sandbox with
}


class ToolError(subprocess.CalledProcessError):
    """A peer exited non-zero; the message carries the tail of what it printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.output}"


def search_path(path: str | None = None) -> str:
    """Debian's directories first, then the rest of ``path`` (default: this process's PATH)."""
    rest = (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep)
    seen: list[str] = []
    for d in [*DEBIAN_DIRS, *rest]:
        if d and d not in seen:
            seen.append(d)
    return os.pathsep.join(seen)


def tool_env(extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for running a peer: ``base`` (default os.environ) + ``extra``, Debian-first PATH."""
    env = dict(os.environ if base is None else base)
    env.update(extra or {})
    env["PATH"] = search_path(env.get("PATH"))
    return env


def which(name: str) -> str | None:
    """Absolute path of a peer, searched on the Debian-first PATH (then its known extra places)."""
    found = shutil.which(name, path=search_path())
    if found:
        return found
    for cand in EXTRA_LOCATIONS.get(name, ()):
        if os.access(cand, os.X_OK):
            return cand
    return None


def available(name: str) -> bool:
    return which(name) is not None


@functools.cache
def _interpreter_prefix(path: str) -> tuple[str, ...]:
    """For a script with an ``#!/usr/bin/env PROG`` shebang: ``(PROG resolved on the Debian-first
    PATH,)``; otherwise ``()`` (the kernel runs the file, with its own absolute interpreter)."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(256)
    except OSError:
        return ()
    if not first.startswith(b"#!"):
        return ()
    words = first[2:].decode("utf-8", "replace").split()
    if len(words) < 2 or Path(words[0]).name != "env":
        return ()
    args = [w for w in words[1:] if not w.startswith("-")]
    if not args:
        return ()
    interp = shutil.which(args[0], path=search_path())
    return (interp,) if interp else ()


def argv(name: str) -> list[str]:
    """The command line prefix that runs peer ``name`` correctly; raises FileNotFoundError when absent."""
    path = which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (Debian package: {PEERS.get(name, '?')})")
    return [*_interpreter_prefix(path), path]


def run_tool(
    name: str,
    *args: str | os.PathLike[str],
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = 1200,
    **kw: Any,
) -> subprocess.CompletedProcess[str]:
    """Run peer ``name`` with ``args`` (text mode, output captured) in :func:`tool_env`.

    With ``check`` (the default) a failure raises :class:`ToolError`, whose message carries the
    tail of the program's output.
    """
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    proc = subprocess.run([*argv(name), *map(os.fspath, args)], env=tool_env(env), timeout=timeout, **kw)
    if check and proc.returncode != 0:
        tail = "\n".join(((proc.stdout or "") + (proc.stderr or "")).splitlines()[-40:])
        raise ToolError(proc.returncode, [name, *map(str, args)], output=tail)
    return proc



# How to ask each peer for its version (default: --version); a peer that has no such flag prints its
# package's version instead (dpkg-query), so the log names exactly what ran.
_VERSION_ARGS: dict[str, tuple[str, ...]] = {"ld": ("--version",), "ldconfig": ("--version",)}
_NO_VERSION_FLAG = {"lddtree", "chroot", "realpath", "unshare", "htpasswd"}


def version_line(name: str) -> str:
    """One line naming the version of peer ``name`` (for the CI log), or why it is unavailable."""
    path = which(name)
    if path is None:
        return f"{name:15} NOT INSTALLED (package: {PEERS.get(name, '?')})"
    prefix = " ".join(_interpreter_prefix(path))
    where = f"{prefix} {path}".strip()
    if name in _NO_VERSION_FLAG and not PEERS.get(name, "").startswith(".ci/run"):
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}", PEERS[name]],
                              capture_output=True, text=True, timeout=60)
        return f"{name:15} {proc.stdout.strip() or '?'}  ({where})"
    try:
        proc = run_tool(name, *_VERSION_ARGS.get(name, ("--version",)), check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{name:15} FAILED: {exc}"
    lines = [ln.strip() for ln in (proc.stdout or proc.stderr or "").splitlines() if ln.strip()]
    status = "" if proc.returncode == 0 else f"  [exit {proc.returncode}]"
    return f"{name:15} {lines[0] if lines else '?'}{status}  ({where})"


if __name__ == "__main__":  # `python -m tests.tools`: the versions of every peer, as .ci/run prints them
    for peer in PEERS:
        print(version_line(peer))
