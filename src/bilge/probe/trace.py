"""Tracing a probe from outside the sandbox: ``strace -f`` on ``bwrap``, and its output parsed.

Why strace rather than fanotify: fanotify reports opens and executions but not ``stat``,
``access`` or ``readlink``, and never a lookup that fails -- the ENOENT paths that show an
interpreter's search path and explain, after slimming, what went missing. It needs
``CAP_SYS_ADMIN`` too. ``strace --seccomp-bpf -f -e trace=%file,%process`` stops the tracee only on
those system calls and runs unprivileged, so bilge can drop to ``nobody`` before starting it.

``-y`` prints every file descriptor with the path it refers to (``AT_FDCWD</app>``, ``3</usr/lib>``
and the path an ``open`` returned), so a relative name is resolved against the very directory the
kernel used. The first ``execve`` is bwrap's own and what bwrap does before it runs the probe
(mounting, pivoting) is host-side: lines are recorded from the second ``execve`` on, where ``/`` is
the image's root.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

STRACE_ARGS = ("-f", "-qq", "--seccomp-bpf", "-y", "-s", "4096", "-e", "trace=%file,%process,fchdir",
               "-e", "signal=none")

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(.*)$", re.S)
_WHOLE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(.*)$", re.S)  # _LINE and _CALL in one
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$", re.S)
_FD = re.compile(r"^(?:AT_FDCWD|-?\d+)(?:<(.*)>)?$", re.S)
# calls whose path argument is a link's *contents*, not a path looked up: take the other one
_SECOND = {"symlink": 1, "symlinkat": 2}
_FORKS = {"clone", "clone3", "fork", "vfork"}
_IGNORED_ROOTS = ("proc", "dev", "sys", "tmp", "var/tmp", "run")


@dataclass
class Access:
    path: str  # image path, absolute, as looked up (symlinks not resolved)
    call: str
    ok: bool
    error: str = ""  # ENOENT, EACCES, ...


@dataclass
class Trace:
    accesses: list[Access] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)  # successful execve targets
    opened: list[str] = field(default_factory=list)  # paths an open returned (3</real/path>)
    execs: int = 0  # execve calls seen: 0 = strace did not start bwrap, 1 = bwrap never ran the probe

    def found(self) -> set[str]:
        return {a.path for a in self.accesses if a.ok} | set(self.opened) | set(self.executed)

    def not_found(self) -> set[str]:
        return {a.path for a in self.accesses if not a.ok and a.error in ("ENOENT", "ENOTDIR")}


def unescape(text: str) -> str:
    """A strace string literal's contents (C escapes) back to the path; bytes that are not UTF-8 come
    back as surrogate escapes."""
    if "\\" not in text:
        return text  # most paths: nothing to undo (and str round-trips through surrogateescape)
    out = bytearray()
    i = 0
    n = len(text)
    simple = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "\\": 92, '"': 34, "'": 39, "a": 7, "b": 8}
    while i < n:
        c = text[i]
        if c != "\\" or i + 1 >= n:
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == "x" and re.match(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        elif nxt in "01234567":
            m = re.match(r"[0-7]{1,3}", text[i + 1:i + 4])
            assert m is not None
            out.append(int(m.group(0), 8) & 0xFF)
            i += 1 + len(m.group(0))
        else:
            out += nxt.encode()
            i += 2
    return out.decode("utf-8", "surrogateescape")


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[^",<\[\]{}()]+|.', re.S)


def split_args(args: str) -> list[str]:
    """Top-level arguments of a strace call (strings, fds with <path>, arrays, structs kept whole).

    Runs of ordinary characters and whole string literals are taken by one regular-expression match
    each (a trace has tens of thousands of calls)."""
    out: list[str] = []
    depth = 0
    cur: list[str] = []
    i = 0
    n = len(args)
    match = _TOKEN.match
    while i < n:
        c = args[i]
        if c == "<" and cur and (cur[-1][-1:].isdigit() or "".join(cur).strip().endswith("AT_FDCWD")):
            j = args.find(">", i + 1)
            j = n if j < 0 else j + 1
            cur.append(args[i:j])  # an fd's path: anything goes until the '>'
            i = j
        elif c in "[{(":
            depth += 1
            cur.append(c)
            i += 1
        elif c in "]})":
            depth -= 1
            cur.append(c)
            i += 1
        elif c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            i += 1
        else:
            m = match(args, i)
            assert m is not None
            cur.append(m.group(0))
            i = m.end()
    if cur:
        out.append("".join(cur).strip())
    return out


def _string(arg: str) -> str | None:
    if len(arg) >= 2 and arg.startswith('"'):
        end = arg.rfind('"')
        if end > 0:
            return unescape(arg[1:end])
    return None


def _fd_path(arg: str) -> str | None:
    m = _FD.match(arg)
    if m and m.group(1) is not None:
        return unescape(m.group(1))
    return None


# the common shape, taken by one match: [fd[<dir>], ]"path"[...] then the other arguments
_HEAD = re.compile(r'(?:(AT_FDCWD|-?\d+)(?:<([^>]*)>)?, )?"((?:[^"\\]|\\.)*)"(?:\.\.\.)?(?:,|$)', re.S)


def _path_arg(name: str, args: str) -> tuple[str | None, str | None, bool]:
    """The path a call looks up (its first string argument, or the one at _SECOND), the directory
    it is relative to when the call names one by fd (``dirfd<path>``), and whether that fd is
    AT_FDCWD (the process's working directory)."""
    index = _SECOND.get(name, 0)
    if index == 0:
        m = _HEAD.match(args)
        if m is not None:
            fd, d, text = m.groups()
            path = unescape(text)
            if fd is None:
                return path, None, False
            return path, None if d is None else unescape(d), fd == "AT_FDCWD"
    parts = split_args(args)
    path = d = None
    at_cwd = False
    if len(parts) > index:
        path = _string(parts[index])
        if path is None and len(parts) > index + 1:
            d = _fd_path(parts[index])
            path = _string(parts[index + 1])
            at_cwd = parts[index].startswith("AT_FDCWD")
    return path, d, at_cwd


def parse(lines: Iterable[str], workdir: str = "/") -> Trace:
    """Parse ``strace -f -y`` output (STRACE_ARGS) of ``bwrap ... -- PROBE``."""
    parser = Parser(workdir)
    parser.feed(lines)
    return parser.trace


class Parser:
    """:func:`parse` in steps: :meth:`feed` takes whole lines as they come (the runner reads a trace
    while its probe still runs), ``trace`` is the result so far."""

    def __init__(self, workdir: str = "/") -> None:
        self.workdir = workdir
        self.trace = Trace()
        self.pending: dict[str, str] = {}  # pid -> the start of an <unfinished ...> call
        self.cwd: dict[str, str] = {}

    def feed(self, lines: Iterable[str]) -> None:
        trace, pending, cwd, workdir = self.trace, self.pending, self.cwd, self.workdir  # locals: a hot loop
        execs = trace.execs  # the count so far, kept in the trace as it grows
        for raw in lines:
            line = raw.rstrip("\n")
            c = _WHOLE.match(line)  # most lines: one match
            if c is not None and not line.endswith("<unfinished ...>"):
                pid, name, args, ret = c.groups()
            else:
                m = _LINE.match(line)
                if not m:
                    continue
                pid, text = m.groups()
                if text.endswith("<unfinished ...>"):
                    pending[pid] = text[: -len("<unfinished ...>")].rstrip()
                    continue
                r = _RESUMED.match(text)
                if r:
                    text = pending.pop(pid, r.group(1) + "(") + r.group(2)
                c = _CALL.match(text)
                if not c:
                    continue
                name, args, ret = c.groups()
            if name in ("execve", "execveat"):
                execs += 1
                trace.execs = execs
                if execs == 1:
                    continue  # bwrap itself
            if execs < 2:
                continue  # bwrap setting up, with host paths
            ok = not ret.startswith("-1") and not ret.startswith("?")
            if name in ("execve", "execveat") and ret.startswith("?"):
                ok = True  # the process was replaced (a multithreaded exec); strace shows "= ?"
            error = ret.split()[1] if ret.startswith("-1") and len(ret.split()) > 1 else ""
            if name in _FORKS and ok:
                child = ret.split("<")[0].strip()
                if child.isdigit():
                    cwd[child] = cwd.get(pid, workdir)
                continue
            if name == "fchdir":
                parts = split_args(args)
                if ok and parts:
                    d = _fd_path(parts[0])
                    if d:
                        cwd[pid] = d
                continue
            path, d, at_cwd = _path_arg(name, args)
            base = cwd.get(pid, workdir)
            if d is not None:
                if at_cwd:
                    cwd[pid] = d
                base = d
            if not path:
                continue
            full = path if path.startswith("/") else posixpath.join(base, path)
            if name == "chdir" and ok:
                cwd[pid] = posixpath.normpath(full)
            trace.accesses.append(Access(full, name, ok, error))
            if ok and name in ("execve", "execveat"):
                trace.executed.append(full)
            if ok and name in ("open", "openat", "openat2", "creat"):
                real = _fd_path(ret.strip())
                if real and real.startswith("/"):
                    trace.opened.append(real)


def image_paths(paths: Iterable[str]) -> list[str]:
    """The paths that can be files of the image: not under what the sandbox mounts itself."""
    out = []
    for p in paths:
        rel = p.strip("/")
        if not rel or any(rel == r or rel.startswith(r + "/") for r in _IGNORED_ROOTS):
            continue
        out.append(rel)
    return sorted(set(out))
