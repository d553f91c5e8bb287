"""bilge.probe's pure parts: probe command lines, the image's User, the interpreter hint, and the
parser of `strace -f -y` output (the lines below are strace 6.1 output of bwrap running `sh -c`,
cut down: the first execve is bwrap's, what it does before the second one uses host paths)."""

from __future__ import annotations

import pytest

from bilge.errors import BilgeError
from bilge.probe.sandbox import SandboxSpec, bwrap_argv, image_user
from bilge.probe.session import ProbeRun, compare, interpreter_entrypoint, parse_probes
from bilge.probe.trace import Trace, image_paths, parse, split_args, unescape

TRACE = r"""7983  execve("/usr/bin/bwrap", ["bwrap", "--unshare-all"], 0x7ffce830f1c8 /* 35 vars */) = 0
7983  openat(AT_FDCWD</work>, "/host/only/path", O_RDONLY|O_CLOEXEC) = 3</host/only/path>
7985  clone(child_stack=NULL, flags=CLONE_NEWNS|SIGCHLD) = 7986
7986  execve("/usr/local/bin/sh", ["sh", "-c", "cat x"], 0x5572a4d4da10 /* 2 vars */) = -1 ENOENT (No such file or directory)
7986  execve("/usr/bin/sh", ["sh", "-c", "cat x"], 0x5572a4d4da10 /* 2 vars */) = 0
7986  openat(AT_FDCWD</app>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>
7986  openat(AT_FDCWD</app>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libc.so.6>
7986  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD <unfinished ...>
7987  execve("/usr/bin/cat", ["cat", "x"], 0x559231a48488 /* 2 vars */ <unfinished ...>
7986  <... clone resumed>, child_tidptr=0x7f9b) = 7987
7987  <... execve resumed>)             = 0
7987  openat(AT_FDCWD</app>, "x", O_RDONLY) = -1 ENOENT (No such file or directory)
7987  newfstatat(3</usr/lib/python3>, "dist-packages", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0
7987  stat("rel\303\251", 0x7ffd) = -1 ENOENT (No such file or directory)
7987  readlink("/proc/self/exe", "/usr/bin/cat", 4095) = 12
7987  symlinkat("target-not-looked-up", AT_FDCWD</app>, "/tmp/new-link") = 0
7987  exit_group(1)                     = ?
"""


def test_parse_keeps_image_paths_after_the_probe_starts():
    t = parse(TRACE.splitlines(), workdir="/app")
    found, missing = t.found(), t.not_found()
    assert "/host/only/path" not in found | missing  # bwrap's own, before the probe ran
    assert t.executed == ["/usr/bin/sh", "/usr/bin/cat"]
    assert "/usr/local/bin/sh" in missing  # a PATH search that failed
    assert "/app/x" in missing  # relative to the cwd strace printed with AT_FDCWD
    assert "/usr/lib/python3/dist-packages" in found  # relative to a directory fd
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in t.opened  # the path the open returned
    assert "/app/relé" in missing  # octal escapes decoded as UTF-8 bytes
    assert "/tmp/new-link" in found and "/app/target-not-looked-up" not in found
    assert image_paths(found) == sorted(p.lstrip("/") for p in found if not p.startswith(("/proc", "/tmp")))


@pytest.mark.parametrize("piece", [1, 7, 64, 10_000])
def test_trace_read_while_written_equals_the_whole_parse(tmp_path, piece):
    """The runner reads a trace while strace still writes it: lines cut anywhere (even inside an
    octal escape or an <unfinished ...> call) give the Trace of one whole parse."""
    from bilge.probe.runner import TraceReader

    whole = parse(TRACE.splitlines(), workdir="/app")
    path = tmp_path / "trace"
    path.write_text("")
    reader = TraceReader(path, "/app")
    data = TRACE.encode()
    with open(path, "ab") as out:
        for start in range(0, len(data), piece):
            out.write(data[start:start + piece])
            out.flush()
            reader.drain()
    got = reader.finish()
    assert (got.accesses, got.executed, got.opened, got.execs) == (
        whole.accesses, whole.executed, whole.opened, whole.execs)
    assert whole.execs == 4 and whole.executed


def test_split_args_and_unescape():
    assert split_args('AT_FDCWD</a, b>, "x, \\"y\\"", {st_mode=S_IFDIR, st_size=1}, 0') == [
        "AT_FDCWD</a, b>", '"x, \\"y\\""', "{st_mode=S_IFDIR, st_size=1}", "0"]
    assert unescape(r"a\nb\x41\101\\") == "a\nbAA\\"


def test_parse_probes_and_probe_file(tmp_path):
    f = tmp_path / "probes"
    f.write_text("# comment\n\nruby -e 'puts 1'\n  node --version  \n")
    assert parse_probes(["python3 -c 'print(1)'"], str(f)) == (
        ("python3", "-c", "print(1)"), ("ruby", "-e", "puts 1"), ("node", "--version"))
    with pytest.raises(BilgeError, match="--probe-file"):
        parse_probes([], str(tmp_path / "absent"))
    with pytest.raises(BilgeError, match="--probe"):
        parse_probes(["echo 'open"])
    with pytest.raises(BilgeError, match="empty"):
        parse_probes(["   "])


PASSWD = b"root:x:0:0:root:/root:/bin/bash\napp:x:1001:1002::/home/app:/bin/sh\n"
GROUP = b"root:x:0:\nstaff:x:50:\napp:x:1002:\n"


@pytest.mark.parametrize(("user", "ids"), [
    ("", (0, 0)), ("app", (1001, 1002)), ("1001", (1001, 1002)), ("app:staff", (1001, 50)),
    ("4242", (4242, 4242)), ("4242:7", (4242, 7)),
])
def test_image_user(user, ids):
    assert image_user({"User": user}, PASSWD, GROUP) == ids


def test_image_user_unknown_name_is_an_error():
    with pytest.raises(BilgeError, match="not in its /etc/passwd"):
        image_user({"User": "ghost"}, PASSWD, GROUP)
    with pytest.raises(BilgeError, match="group"):
        image_user({"User": "app:ghosts"}, PASSWD, GROUP)


@pytest.mark.parametrize(("config", "found"), [
    ({"Cmd": ["python3", "/app/app.py"]}, "python3"),
    ({"Entrypoint": ["/usr/bin/ruby"], "Cmd": ["app.rb"]}, "ruby"),
    ({"Entrypoint": ["/usr/bin/env", "node"], "Cmd": ["app.js"]}, "node"),
    ({"Cmd": ["/bin/sh", "-c", "java -jar app.jar"]}, None),
    ({"Cmd": ["nginx", "-g", "daemon off;"]}, None),
    ({}, None),
])
def test_interpreter_entrypoint(config, found):
    assert interpreter_entrypoint(config) == found


def test_bwrap_command_line_isolates(tmp_path):
    args = bwrap_argv(SandboxSpec(tmp_path, {"A": "1", "BAD=NAME": "x"}, "/app", 5, 6), ["prog", "arg"])
    joined = " ".join(args)
    assert "--unshare-all" in args and "--clearenv" in args and "--die-with-parent" in args
    assert f"--ro-bind {tmp_path} /" in joined and "--uid 5 --gid 6" in joined and "--chdir /app" in joined
    assert "--setenv A 1" in joined and "BAD=NAME" not in joined and "--setenv PATH" in joined
    assert "--bind" not in args  # nothing of the host is mounted writable
    assert args[-3:] == ["--", "prog", "arg"]


def _run(code: int, out: bytes, timed_out: bool = False) -> ProbeRun:
    return ProbeRun(("prog",), code, out, b"", 0.1, timed_out, Trace())


def test_compare_modes():
    orig = _run(0, b"12:00:01\n")
    assert compare(orig, _run(0, b"12:00:01\n"), "output") == (True, "")
    assert compare(orig, _run(0, b"12:00:02\n"), "output")[0] is False
    assert compare(orig, _run(0, b"12:00:02\n"), "exit") == (True, "")  # --probe-compare exit
    assert compare(orig, _run(1, b"12:00:01\n"), "exit") == (False, "exit code 1 (original 0)")
    assert compare(orig, _run(0, b"", timed_out=True), "exit")[0] is False
