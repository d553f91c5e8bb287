"""`bilge slim --probe`: the sandbox, hostile images, the ENOENT report, and a slimmed image that the
real engine runs with the same output as the original.

CI builds one small stack (Debian's python3 with python3-yaml, whose C extension needs libyaml: a
file the ELF closure of python3 does not reach, loaded at run time). The sandbox and hostile-image
tests run on the base image (bilge-base:bookworm, made by tests/base-image.sh) and images derived from its
layer in code. Larger stacks (Flask, Express, Rails) are in benchmarks/probe_bench.py and, with
BILGE_PROBE_STACKS=all, in test_probe_stacks.py.

Independent checks: the engine (`docker load` + `docker run`) for the slimmed image's output and
size (`docker image inspect .Size`), a host socket for the network, the host filesystem and /proc
for what a probe could touch or leave behind.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from bilge.errors import BilgeError
from bilge.probe import ProbeOptions, parse_probes
from bilge.probe.session import Session
from bilge.rewrite import slim
from bilge.source import open_image
from bilge.testing import config_for, docker_archive, layer_tar
from tests.integration.conftest import BASE_IMAGE, DOCKER, docker_rmi, docker_save, require_tool, run

APP = """\
import yaml
doc = yaml.load("name: bilge\\nsizes: [1, 2, 3]\\n", Loader=yaml.CSafeLoader)
print(yaml.dump(doc, Dumper=yaml.CSafeDumper), end="")
print("libyaml", yaml.__with_libyaml__)
"""

PY_DOCKERFILE = """\
FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends python3-yaml && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY app.py /app/app.py
CMD ["python3", "/app/app.py"]
"""

PROBE = "python3 /app/app.py"


@pytest.fixture(scope="module")
def tools(docker):
    require_tool("bwrap")
    require_tool("strace")


@pytest.fixture(scope="module")
def py_image(tools, built_image, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("ctx-probe-py")
    (ctx / "Dockerfile").write_text(PY_DOCKERFILE)
    (ctx / "app.py").write_text(APP)
    return built_image(ctx, "probe-py")


@pytest.fixture(scope="module")
def base_tar(tools, base_image, tmp_path_factory) -> bytes:
    """The one layer of bilge-base:bookworm (a real Debian minbase root), saved from the engine once."""
    archive = docker_save(BASE_IMAGE, tmp_path_factory.mktemp("probe-base") / "base.tar")
    with tarfile.open(archive) as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())
        (layer,) = manifest[0]["Layers"]
        return tf.extractfile(layer).read()


def _layer_subset(data: bytes, keep) -> bytes:
    """A layer tar holding the members of ``data`` whose name (without "./") ``keep`` accepts."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src:
            if keep(m, m.name.removeprefix("./")):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    return out.getvalue()


@pytest.fixture(scope="module")
def base_layer(base_tar) -> bytes:
    """The base layer without what the sandbox tests never run (/usr/share, /var, the libraries'
    subdirectories): a third of the size to materialise."""
    libdir = "usr/lib/x86_64-linux-gnu/"

    def keep(m, name: str) -> bool:
        lib = name.startswith(libdir) and "/" not in name[len(libdir):]
        return m.isdir() or m.issym() or name.startswith(("etc/", "usr/bin/")) or lib

    return _layer_subset(base_tar, keep)


@pytest.fixture(scope="module")
def gconv_layer(base_tar) -> bytes:
    """glibc's iconv modules (usr/lib/x86_64-linux-gnu/gconv) of the base layer, as one layer."""
    return _layer_subset(base_tar, lambda m, name: name.startswith("usr/lib/x86_64-linux-gnu/gconv"))


def image_of(path: Path, layers: list, config: dict | None = None) -> str:
    tars = [t if isinstance(t, bytes) else layer_tar(t) for t in layers]
    cfg = config_for(tars, extra={"config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], **(config or {})}})
    docker_archive(path, tars, config=cfg)
    return str(path)


@pytest.fixture
def work(tmp_path):
    """A directory for bilge's temporary roots that the unprivileged sandbox user can reach (pytest's
    own tmp_path is private to root): made under the system's temporary directory, removed after."""
    path = Path(tempfile.mkdtemp(prefix="bilge-probe-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def trace(ref: str, probes: list[str], work: Path, **opts) -> tuple[Session, object]:
    """Materialise ``ref`` (during the one read of its layers) and run the probes once (the caller
    closes the session)."""
    src = open_image(ref)
    src.__enter__()
    session = Session(src, ProbeOptions(parse_probes(probes), tmpdir=str(work), **opts))
    return session, session.trace()


def _layers(archive) -> list[bytes]:
    with tarfile.open(archive) as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())
        return [tf.extractfile(name).read() for name in manifest[0]["Layers"]]


def multistage_bytes(original, slimmed) -> tuple[int, int]:
    """The multistage equivalent measured with tarfile alone: the regular-file bytes of the original's
    bottom layer, and of the files in the slim image that a layer above it wrote last."""
    layers = _layers(original)
    writer: dict[str, int] = {}
    for i, data in enumerate(layers):
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for m in tf:
                writer[m.name.removeprefix("./")] = i
    with tarfile.open(fileobj=io.BytesIO(layers[0])) as tf:
        base = sum(m.size for m in tf if m.isreg())
    (slim_layer,) = _layers(slimmed)
    with tarfile.open(fileobj=io.BytesIO(slim_layer)) as tf:
        above = sum(m.size for m in tf if m.isreg() and writer.get(m.name.removeprefix("./"), 0) > 0)
    return base, above


def engine_size(tag: str) -> int:
    return int(json.loads(run([DOCKER, "image", "inspect", tag]))[0]["Size"])


# ---------------------------------------------------------------------------------------------
# the slimmed image, run by the engine


def test_probe_slim_runs_in_the_engine_with_the_same_output(py_image, tmp_path):
    want = run([DOCKER, "run", "--rm", "--network", "none", py_image.tag])
    assert "libyaml True" in want and "name: bilge" in want
    out = tmp_path / "slim.tar"
    tag = "bilge-it-probe-py-slim:test"
    with open_image(str(py_image.archive)) as src:
        res, plan = slim(src, f"docker-archive:{out}:{tag}", [], probe=ProbeOptions(parse_probes([PROBE])))
    probe = res.details["probe"]
    assert probe["ok"] and probe["verified"], probe
    assert probe["probes"][0]["original"]["exit_code"] == 0
    origins = res.details["kept_by_origin"]
    assert origins["traced"]["files"] > 0
    me = res.details["multistage_equivalent"]
    base, above = multistage_bytes(py_image.archive, out)
    assert (me["base_layer_bytes"], me["kept_above_base_bytes"]) == (base, above) and me["bytes"] == base + above
    assert 0 < above < res.details["kept_bytes"] < me["bytes"]
    # the extension module and libyaml were opened at run time: kept because traced
    assert any(p.startswith("usr/lib/python3/dist-packages/yaml/_yaml") for p in plan.keep.exact)
    assert any("libyaml" in p for p in plan.keep.exact)
    try:
        run([DOCKER, "load", "-i", str(out)])
        assert run([DOCKER, "run", "--rm", "--network", "none", tag]) == want
        # the image's own CMD too, and by the engine's measure much smaller than the original
        assert run([DOCKER, "run", "--rm", "--network", "none", tag, "python3", "/app/app.py"]) == want
        assert engine_size(tag) < 0.4 * engine_size(py_image.tag)
    finally:
        docker_rmi(tag)


def test_enoent_report_names_the_file_removed_on_purpose(base_layer, tmp_path, work):
    """The same plan as slim's, less one file the probe reads at run time (a data file a shell script
    sources by a name no ELF header mentions): the slim run fails and the report names that file
    (found by the original run, not found by the slim one); with it, the probe passes again."""
    from bilge.rewrite import _Without, plan_slim

    app = [("dir", "app", 0o755), ("dir", "app/lib", 0o755),
           ("file", "app/lib/greeting.sh", b"greet() { echo hello from $1; }\n"),
           ("file", "app/run.sh", b"#!/usr/bin/env sh\n. /app/lib/greeting.sh\ngreet probe\n", 0o755)]
    # the Cmd is not the probe: /usr/bin/env, which the kernel loads for the script without a system call
    # strace could show, comes only through the closure of the traced script
    ref = image_of(tmp_path / "app.tar", [base_layer, app], {"Cmd": ["/usr/bin/true"]})
    needed = "app/lib/greeting.sh"
    with open_image(ref) as src:
        with Session(src, ProbeOptions(parse_probes(["/app/run.sh"]), tmpdir=str(work))) as session:
            read = session.open()
            outcome = session.trace()
            splan = plan_slim(read, src.image, [], entrypoint=True, view=session.view(),
                              traced=outcome.found, traced_missing=outcome.not_found, programs=outcome.programs)
            assert splan.keep(needed) and splan.keep.reasons[needed] == "traced"
            assert splan.keep.reasons["usr/bin/env"].startswith("needed")
            session.verify(_Without(splan.keep, {needed}))
            (check,) = outcome.checks
            assert check.original.stdout == b"hello from probe\n"
            assert not outcome.ok and check.slim.exit_code != 0 and check.slim.stdout == b""
            assert check.missing == ["/" + needed]
            session.verify(splan.keep)  # and with it, the probe passes again
            assert outcome.ok and check.slim.stdout == b"hello from probe\n"
    assert list(work.iterdir()) == []


def test_iconv_modules_are_kept_as_the_probes_load_them(base_layer, gconv_layer, tmp_path, work):
    """Without --probe the closure of a program that calls iconv_open keeps every gconv module (it
    cannot know which character sets will be converted); with --probe, the ones the probe loaded."""
    ref = image_of(tmp_path / "iconv.tar", [base_layer, gconv_layer], {"Cmd": ["/usr/bin/true"]})
    gconv = "usr/lib/x86_64-linux-gnu/gconv/"
    probe = "sh -c 'printf \"caf\\351\" | iconv -f CP1252 -t UTF-8'"
    with open_image(ref) as src:
        res, plan = slim(src, None, [], probe=ProbeOptions(parse_probes([probe]), tmpdir=str(work)), dry_run=True)
    (check,) = res.details["probe"]["probes"]
    assert res.details["probe"]["ok"] and check["original"]["exit_code"] == 0, check
    assert plan.keep(gconv + "CP1252.so") and plan.keep.reasons[gconv + "CP1252.so"] == "traced"
    assert not plan.keep(gconv + "IBM1399.so") and not plan.keep(gconv + "BIG5.so")
    with open_image(ref) as src:
        _, by_hand = slim(src, None, ["/usr/bin/iconv"], dry_run=True)
    assert by_hand.keep(gconv + "IBM1399.so") and by_hand.keep(gconv + "CP1252.so")
    assert list(work.iterdir()) == []


def test_cli_probe_dry_run_and_interpreter_hint(base_layer, tmp_path, work):
    ref = image_of(tmp_path / "small.tar", [base_layer], {"Cmd": ["grep", "-c", "root", "/etc/passwd"]})
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(work)}
    proc = subprocess.run([sys.executable, "-m", "bilge", "slim", ref, "--probe", "grep -c root /etc/passwd",
                           "--dry-run", "--format", "json"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] and doc["output"] is None and doc["probe"]["ok"]
    assert {"/etc/passwd", "/usr/bin/grep"} <= set(doc["kept"])
    (p,) = doc["probe"]["probes"]
    assert p["original"]["exit_code"] == 0 and p["slim"]["exit_code"] == 0
    assert doc["kept_by_origin"]["traced"]["files"] >= 2
    # without --probe, an interpreter entrypoint gets the hint
    ref = image_of(tmp_path / "interp.tar", [base_layer], {"Cmd": ["python3", "/app/app.py"]})
    proc = subprocess.run([sys.executable, "-m", "bilge", "slim", ref, "--entrypoint", "--dry-run", "-q"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert "--probe" in proc.stderr and "python3" in proc.stderr
    assert list(work.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# the sandbox


def test_sandbox_sees_no_host_file_no_network_and_writes_only_tmp(base_layer, tmp_path, work):
    ref = image_of(tmp_path / "base.tar", [base_layer])
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST-SECRET-CONTENT\n")
    secret.chmod(0o644)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    probes = [
        f"cat {secret}",
        f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected'",
        "touch /etc/probe-wrote-here",
        "sh -c 'echo scratch > /tmp/scratch && cat /tmp/scratch'",
        "cat /proc/self/uid_map",
        "sh -c 'ls /proc | grep -c \"^[0-9]\"'",
    ]
    session, outcome = trace(ref, probes, work)
    try:
        runs = {c.argv: c.original for c in outcome.checks}
        read_secret, connect, write_etc, write_tmp, uid_map, procs = (runs[a] for a in parse_probes(probes))
        assert read_secret.exit_code != 0 and b"HOST-SECRET" not in read_secret.stdout
        assert connect.exit_code != 0 and b"connected" not in connect.stdout
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing reached the host
        assert write_etc.exit_code != 0
        assert b"Read-only file system" in write_etc.stderr
        assert write_tmp.exit_code == 0 and write_tmp.stdout == b"scratch\n"
        fields = uid_map.stdout.split()
        assert fields[0] == b"0" and (os.geteuid() != 0 or fields[1] != b"0")  # not root on the host
        assert int(procs.stdout) <= 5  # bwrap, sh, ls, grep: a fresh pid namespace, no host process
        # the failed lookup of the host path is traced (an image path, under the sandbox's own /tmp)
        assert str(secret) in read_secret.trace.not_found()
        rootfs = session.full.rootfs
        assert not (rootfs / "etc/probe-wrote-here").exists() and not Path("/etc/probe-wrote-here").exists()
        assert not (rootfs / "tmp/scratch").exists()
    finally:
        session.close()
        listener.close()
    assert list(work.iterdir()) == []  # the temporary root is gone


def _sleepers(tag: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == b"sleep\0" + tag.encode() + b"\0":  # the probe itself
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_probe_past_its_timeout_fails_cleanly_and_leaves_nothing(base_layer, tmp_path, work):
    ref = image_of(tmp_path / "base.tar", [base_layer])
    started = time.monotonic()
    with pytest.raises(BilgeError, match="probe-timeout"):
        trace(ref, ["sleep 37.25"], work, timeout=1.0)
    assert time.monotonic() - started < 60
    time.sleep(0.5)
    assert _sleepers("37.25") == []  # the whole sandbox was killed
    assert list(work.iterdir()) == []


def test_memory_limit_stops_a_probe_that_allocates_too_much(base_layer, tmp_path, work):
    ref = image_of(tmp_path / "base.tar", [base_layer])
    grow = "bash -c 'x=$(head -c 400000000 /dev/zero | tr \"\\0\" x); echo ${#x}'"
    session, outcome = trace(ref, [grow, "bash -c 'x=$(head -c 4000 /dev/zero | tr \"\\0\" x); echo ${#x}'"],
                             work, memory=192 << 20)
    try:
        big, small = (c.original for c in outcome.checks)
        assert big.exit_code != 0 and b"400000000" not in big.stdout
        assert small.exit_code == 0 and small.stdout == b"4000\n"  # the limit, not the sandbox, stopped it
    finally:
        session.close()


def test_sigterm_during_a_probe_leaves_no_directory_and_no_process(base_layer, tmp_path, work):
    ref = image_of(tmp_path / "base.tar", [base_layer])
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(work)}
    token = f"{random.randint(100, 999)}.{random.randint(100000, 999999)}"  # this run's probe: sleep TOKEN
    proc = subprocess.Popen([sys.executable, "-m", "bilge", "slim", ref, "--probe", f"sleep {token}", "--dry-run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 240
        while not _sleepers(token) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert _sleepers(token), proc.communicate()
        assert list(work.iterdir())  # the materialised root exists while the probe runs
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, err
        time.sleep(0.5)
        assert _sleepers(token) == []
        assert list(work.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_as_root_a_private_tmpdir_just_works(base_layer, tmp_path):
    """As root, TMPDIR may be a directory the unprivileged sandbox user cannot reach (pytest's own,
    under a 0700 parent): slim says so on one line and writes the filesystem to a standard temporary
    directory nobody can reach instead (bilge's own directory there is 0711: traverse, not list);
    nothing is left in either place."""
    if os.geteuid() != 0:
        pytest.skip("only bilge running as root hands the sandbox to another user")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert not os.stat(tmp_path.parent).st_mode & stat.S_IXOTH  # nobody could not reach it by path
    ref = image_of(tmp_path / "base.tar", [base_layer], {"Cmd": ["grep", "-c", "root", "/etc/passwd"]})
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(private)}
    proc = subprocess.run([sys.executable, "-m", "bilge", "slim", ref, "--probe", "grep -c root /etc/passwd",
                           "-o", f"docker-archive:{tmp_path / 'out.tar'}", "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["probe"]["ok"] and doc["probe"]["verified"]
    assert (tmp_path / "out.tar").stat().st_size > 0
    used = Path(doc["probe"]["tmpdir"])
    assert used != private and all(os.stat(d).st_mode & stat.S_IXOTH for d in (used, *used.parents))
    assert f"{private} is not searchable by other users" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(private.iterdir()) == []


def test_cli_bad_probe_input_is_one_line_exit_2(base_layer, tmp_path):
    ref = image_of(tmp_path / "base.tar", [base_layer])
    env = {**os.environ, "NO_COLOR": "1"}
    for args in (["--probe", "'unclosed"], ["--probe-file", str(tmp_path / "absent")],
                 ["--probe", "true", "--probe-compare", "sometimes"]):
        proc = subprocess.run([sys.executable, "-m", "bilge", "slim", ref, "--dry-run", *args],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# hostile images


def test_hostile_image_nothing_escapes_and_setuid_is_not_honoured(base_layer, tmp_path, work):
    host = tmp_path / "host"
    host.mkdir()
    (host / "target.txt").write_text("HOST-TARGET\n")
    with tarfile.open(fileobj=io.BytesIO(base_layer)) as tf:
        id_bytes = tf.extractfile("./usr/bin/id").read()

    def raw(name: str, kind: bytes, **kw) -> tuple:
        info = tarfile.TarInfo(name)
        info.type = kind
        for k, v in kw.items():
            setattr(info, k, v)
        return ("raw", info, None)

    hostile = layer_tar([
        ("symlink", "host-abs", str(host)),  # an absolute link to a host directory
        ("symlink", "host-rel", "../../../../../../../../" + str(host).lstrip("/")),
        ("file", "host-abs/written-through-link", b"pwned"),  # lands in a directory, never on the host
        raw("../escaped-dotdot", tarfile.REGTYPE),
        raw("usr/local/kmem", tarfile.CHRTYPE, devmajor=1, devminor=2, mode=0o666),
        raw("usr/local/fifo", tarfile.FIFOTYPE),
        ("file", "usr/local/bin/suid-id", id_bytes, 0o4755),
        ("file", "proc/fake-status", b"shipped /proc"),
        ("file", "dev/sda", b"shipped /dev"),
        ("dir", "home/user", 0o755),
        ("symlink", "run", str(host)),  # where the sandbox mounts a tmpfs: replaced by a directory
        ("symlink", "var", "/etc"),  # on the way to /var/tmp: that mount is left out
    ])
    ref = image_of(tmp_path / "hostile.tar", [base_layer, hostile], {"User": "1000:1000"})
    probes = [f"cat {host}/target.txt", "cat /host-abs/target.txt", "cat /host-rel/target.txt",
              "/usr/local/bin/suid-id -u", "cat /proc/fake-status", "cat /dev/sda", "ls /usr/local"]
    session, outcome = trace(ref, probes, work)
    try:
        runs = [c.original for c in outcome.checks]
        for run_ in runs[:3]:
            assert run_.exit_code != 0 and b"HOST-TARGET" not in run_.stdout
        assert runs[3].exit_code == 0 and runs[3].stdout == b"1000\n"  # the setuid bit is not honoured
        assert runs[4].exit_code != 0 and runs[5].exit_code != 0  # fresh /proc and /dev
        assert b"kmem" not in runs[6].stdout and b"fifo" not in runs[6].stdout
        rootfs = session.full.rootfs
        for dirpath, dirnames, filenames in os.walk(session.full.top):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                assert not stat.S_ISCHR(st.st_mode) and not stat.S_ISBLK(st.st_mode)
                assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID)
        assert (rootfs / "host-abs").is_dir() and not (rootfs / "host-abs").is_symlink()
        assert os.readlink(rootfs / "host-rel").endswith(str(host).lstrip("/"))
        assert (rootfs / "run").is_dir() and not (rootfs / "run").is_symlink()
        assert os.readlink(rootfs / "var") == "/etc" and not (rootfs / "etc/tmp").exists()
    finally:
        session.close()
    assert sorted(p.name for p in host.iterdir()) == ["target.txt"]  # the host directory is untouched
    assert not (tmp_path / "escaped-dotdot").exists() and not Path("/escaped-dotdot").exists()
    assert list(work.iterdir()) == []


def test_probes_run_side_by_side_each_with_its_own_limit_results_in_order(base_layer, tmp_path, work):
    """bilge.probe.runner: two runs at once, the results in the probes' order, a run past its limit
    killed (and only it) while the others finish with their output; a traced run has its trace."""
    import dataclasses

    from bilge.probe.runner import run_probes
    from bilge.probe.session import sandbox_spec

    ref = image_of(tmp_path / "base.tar", [base_layer])
    session, _ = trace(ref, ["true"], work)
    try:
        spec = sandbox_spec(session.full.rootfs, session.read, session.src.image, session.opts)
        spec = dataclasses.replace(spec, timeout=4.0)
        started = time.monotonic()
        runs = run_probes([(spec, ("sh", "-c", "sleep 2; echo first"), None),
                           (spec, ("sleep", "43.75"), None),
                           (spec, ("echo", "third"), session.full.top / "trace-side")], workers=2)
        took = time.monotonic() - started
        assert [r.stdout for r in runs] == [b"first\n", b"", b"third\n"]
        assert [r.timed_out for r in runs] == [False, True, False]
        assert [r.exit_code == 0 for r in runs] == [True, False, True]
        assert runs[1].seconds >= 4.0
        assert took < runs[0].seconds + runs[1].seconds  # one after the other would take their sum
        assert not runs[0].traced and runs[2].traced
        assert any(p.endswith("/echo") for p in runs[2].trace.executed)
        time.sleep(0.5)
        assert _sleepers("43.75") == []  # the run past its limit was killed, sandbox and all
    finally:
        session.close()


def _allowed(status: bytes) -> str:
    """The Cpus_allowed_list of a /proc/PID/status."""
    (line,) = [x for x in status.decode().splitlines() if x.startswith("Cpus_allowed_list:")]
    return line.split(":", 1)[1].strip()


def test_traced_runs_are_pinned_each_to_its_own_cpu_untraced_runs_are_not(base_layer, tmp_path, work):
    """bilge.probe.runner: strace and the sandbox it traces share one CPU, a different one for each
    traced run at the same time; an untraced run keeps every CPU this process may use. (Read from
    inside the sandbox: its own /proc/self/status.)"""
    from bilge.probe.runner import run_probes
    from bilge.probe.session import sandbox_spec

    cpus = sorted(os.sched_getaffinity(0))
    ref = image_of(tmp_path / "base.tar", [base_layer])
    session, _ = trace(ref, ["true"], work)
    try:
        spec = sandbox_spec(session.full.rootfs, session.read, session.src.image, session.opts)
        status = ("cat", "/proc/self/status")
        runs = run_probes([(spec, status, session.full.top / "trace-a"), (spec, status, session.full.top / "trace-b"),
                           (spec, status, None)], workers=3)
    finally:
        session.close()
    assert [r.exit_code for r in runs] == [0, 0, 0]
    first, second, untraced = (_allowed(r.stdout) for r in runs)
    assert first == str(cpus[0])
    if len(cpus) > 1:
        assert second == str(cpus[1])
    assert untraced == _allowed(Path("/proc/self/status").read_bytes())
    assert runs[0].traced and runs[1].traced and not runs[2].traced


@pytest.mark.parametrize("transport", ["docker-archive", "oci"])
def test_archive_written_while_verifying_is_given_up_when_the_slim_run_differs(base_layer, tmp_path, work,
                                                                                 transport):
    """An archive or layout output is written while the verification runs go on: when the slim run's
    output differs (a probe printing a fresh random UUID each time), no image is written, nothing is
    staged beside the target, and the report says why; a probe compared by exit code passes."""
    ref = image_of(tmp_path / "base.tar", [base_layer])
    out = tmp_path / "out" / "slim"
    out.parent.mkdir()
    target = f"{transport}:{out}" + (":bilge-it-probe-differs:test" if transport == "docker-archive" else "")
    uuid = "cat /proc/sys/kernel/random/uuid"
    with open_image(ref) as src:
        res, _ = slim(src, target, [], probe=ProbeOptions(parse_probes([uuid, "true"]), tmpdir=str(work)))
    probe = res.details["probe"]
    assert res.output is None and not probe["ok"] and probe["verified"]
    assert [c["ok"] for c in probe["probes"]] == [False, True]
    assert probe["probes"][0]["why"] == "stdout differs from the original's"
    assert list(out.parent.iterdir()) == [] and list(work.iterdir()) == []
    with open_image(ref) as src:
        res, _ = slim(src, target, [], probe=ProbeOptions(parse_probes([uuid]), compare="exit", tmpdir=str(work)))
    assert res.details["probe"]["ok"] and res.output is not None and out.exists()
    assert list(work.iterdir()) == []
