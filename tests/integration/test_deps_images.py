"""`bilge deps` on images built by the real engine from Debian packages.

Independent measurements: pax-utils ``lddtree -R`` on the ``umoci unpack``-ed rootfs (same answer),
the programs themselves run in a chroot that holds only the closure (they start), and a real
``docker build`` of the generated Dockerfile lines (the program runs in a scratch image; the layer
tar holds the symlinks).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.integration.conftest import docker_build, docker_rmi, docker_save, run
from tests.tools import argv, tool_env, which

argv_ = argv  # in_chroot() has a parameter named argv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_deps_roots import Root, have_gcc, have_musl  # noqa: E402

pytestmark = pytest.mark.integration

LIBDIR = "/usr/lib/x86_64-linux-gnu"
RUBY_EXT_DIRS = [f"{LIBDIR}/ruby", f"{LIBDIR}/rubygems-integration"]
RUBY_DATA_DIRS = ["/usr/lib/ruby", "/usr/share/rubygems-integration", "/var/lib/gems"] + RUBY_EXT_DIRS

DOCKERFILE = """\
FROM bilge-base:bookworm
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ruby ruby-pg ruby-nokogiri curl musl \\
 && rm -rf /var/lib/apt/lists/*
COPY app/ /opt/app/
COPY musl/ /opt/musl/
RUN ln -s /opt/app/bin/hello /usr/local/bin/hello
"""


def bilge(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "NO_COLOR": "1"}
    p = subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=env, timeout=900)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="session")
def app_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Programs compiled on the (bookworm) host: $ORIGIN runpaths, a 32-bit decoy, a musl program."""
    if not have_gcc():
        pytest.skip("needs gcc to build the $ORIGIN program")
    ctx = tmp_path_factory.mktemp("deps-ctx")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    r = Root(ctx / "app", tmp_path_factory.mktemp("deps-work"))
    world = r.lib("lib/libworld.so.1", "libworld.so.1", "world", "WORLD")
    hello = r.lib("lib/libhello.so.1.0.0", "libhello.so.1", "hello", "HELLO", deps=((world, "world"),),
                  runpath="$ORIGIN")
    r.symlink("lib/libhello.so.1", "libhello.so.1.0.0")
    r.lib("wrong/libhello.so.1", "libhello.so.1", "hello", "HELLO32", m32=True)  # earlier in the path
    r.prog("bin/hello", ((hello, "hello"),), runpath="$ORIGIN/../wrong:$ORIGIN/../lib")
    m = Root(ctx / "musl", r.work / "m")
    if have_musl():
        mw = m.lib("lib/libmw.so.1", "libmw.so.1", "mw", "MUSL-WORLD", musl=True)
        m.prog("bin/mhello", ((mw, "mw"),), musl=True, runpath="/opt/musl/lib")
    else:
        m.write("README", "musl-gcc was not available when this image was built\n")
    return ctx


@pytest.fixture(scope="session")
def image(built_image, app_context: Path):
    return built_image(app_context, "deps-ruby")


@pytest.fixture(scope="session")
def rootfs(image, docker_engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("deps-unpack")
    # gzip level 1: the layout exists only for umoci to unpack (faster than skopeo's default level)
    docker_engine.skopeo_copy(f"docker-archive:{image.archive}", f"oci:{work / 'oci'}:img", "--dest-compress-level", "1")
    return docker_engine.umoci_unpack(work / "oci", "img", work / "bundle")


def chroot_realpath(rootfs: Path, paths: list[str]) -> set[str]:
    out = run([*argv("chroot"), str(rootfs), "/usr/bin/realpath", "-e", *paths])
    return set(out.split())


def lddtree_files(rootfs: Path, paths: list[str]) -> set[str]:
    """Real files lddtree finds for ``paths`` in the unpacked rootfs (union over the paths)."""
    out = run([*argv("lddtree"), "-R", str(rootfs), "-l", *paths])
    inside = [p[len(str(rootfs)):] for p in out.split()]
    return chroot_realpath(rootfs, inside)


def closure_json(archive: Path, *args: str) -> dict:
    code, out, err = bilge("deps", f"docker-archive:{archive}", "--format", "json", *args)
    assert code in (0, 1), err
    return json.loads(out)


def real_files(doc: dict, roles=("root", "needed", "interp")) -> set[str]:
    return {f["path"] for f in doc["files"] if f["kind"] == "file" and f["role"] in roles}


def elf_files_under(rootfs: Path, dirs: list[str]) -> list[str]:
    found = []
    for d in dirs:
        for p in sorted((rootfs / d.lstrip("/")).rglob("*")):
            if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF":
                found.append("/" + p.relative_to(rootfs).as_posix())
    return found


# -- same answer as lddtree --------------------------------------------------------------------------


@pytest.mark.parametrize("program", ["/usr/bin/curl", "/usr/bin/ruby3.1", "/opt/musl/bin/mhello"])
def test_program_closure_equals_lddtree(image, rootfs: Path, program: str) -> None:
    if not (rootfs / program.lstrip("/")).exists():
        pytest.skip(f"{program} not in the image")
    doc = closure_json(image.archive, "--binary", program, "--strict")
    assert doc["missing"] == []
    assert real_files(doc) == lddtree_files(rootfs, [program])


def test_ruby_extensions_closure_equals_lddtree(image, rootfs: Path) -> None:
    args = [a for d in RUBY_EXT_DIRS for a in ("--path", d)]
    doc = closure_json(image.archive, *args, "--strict")
    assert doc["missing"] == []
    exts = elf_files_under(rootfs, RUBY_EXT_DIRS)
    assert any(p.endswith("/pg_ext.so") for p in exts) and any(p.endswith("/nokogiri.so") for p in exts)
    assert {r["canonical"] for r in doc["roots"]} == set(exts)
    ours = real_files(doc)
    assert ours == lddtree_files(rootfs, exts)
    assert f"{LIBDIR}/libpq.so.5.15" in ours or any("/libpq.so.5" in p for p in ours)


def loader_trace(rootfs: Path, program: str) -> set[str]:
    """Real files the image's own glibc loader maps for ``program`` (LD_TRACE_LOADED_OBJECTS, in a chroot)."""
    p = in_chroot(rootfs, "/usr/bin/env", "LD_TRACE_LOADED_OBJECTS=1", program)
    assert p.returncode == 0 and "not found" not in p.stdout, p.stdout + p.stderr
    paths = [ln.split("=>")[-1].split("(")[0].strip() for ln in p.stdout.splitlines() if "vdso" not in ln]
    return chroot_realpath(rootfs, [x for x in paths if x] + [program])


def test_symlink_program_and_origin(image, rootfs: Path, chroot_ok) -> None:
    """$ORIGIN through a symlinked program, past a 32-bit decoy. lddtree -R cannot be the referee here: it
    prefixes the root twice when it expands $ORIGIN; the image's loader in a chroot is."""
    doc = closure_json(image.archive, "--binary", "/usr/local/bin/hello", "--strict")
    links = {f["path"]: f["target"] for f in doc["files"] if f["kind"] == "symlink"}
    assert links["/usr/local/bin/hello"] == "/opt/app/bin/hello"
    assert links["/opt/app/lib/libhello.so.1"] == "libhello.so.1.0.0"
    assert "/opt/app/wrong/libhello.so.1" not in {f["path"] for f in doc["files"]}  # the 32-bit decoy
    assert real_files(doc) == loader_trace(rootfs, "/usr/local/bin/hello")


# -- the closure alone runs the programs ------------------------------------------------------------


def copy_closure(rootfs: Path, paths: list[str], dest: Path, data_dirs: list[str] = ()) -> None:
    """Copy exactly ``paths`` (files and symlinks as they are) and whole data directories into ``dest``."""
    for p in paths:
        src, dst = rootfs / p.lstrip("/"), dest / p.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    for d in data_dirs:
        src = rootfs / d.lstrip("/")
        if src.is_dir():
            shutil.copytree(src, dest / d.lstrip("/"), symlinks=True, dirs_exist_ok=True)
    (dest / "proc").mkdir(exist_ok=True)
    (dest / "tmp").mkdir(exist_ok=True)


def in_chroot(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [*argv_("chroot"), str(root), *argv]
    if which("unshare"):
        cmd = [*argv_("unshare"), "--mount", "--fork", f"--mount-proc={root}/proc", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env=tool_env(base={"PATH": "/usr/bin:/bin", "HOME": "/"}))


@pytest.fixture
def chroot_ok() -> None:
    if os.geteuid() != 0 or not which("chroot"):
        pytest.skip("needs root and chroot")


def test_curl_runs_from_its_closure(image, rootfs: Path, tmp_path: Path, chroot_ok) -> None:
    code, out, err = bilge("deps", f"docker-archive:{image.archive}", "--binary", "/usr/bin/curl", "--format", "list")
    assert code == 0, err
    dest = tmp_path / "curl"
    copy_closure(rootfs, out.split(), dest)
    p = in_chroot(dest, "/usr/bin/curl", "--version")
    assert p.returncode == 0 and p.stdout.startswith("curl "), p.stderr
    code, strict_out, _ = bilge("deps", f"docker-archive:{image.archive}", "-b", "/usr/bin/curl", "-f", "list", "--strict")
    strict_dest = tmp_path / "curl-strict"
    copy_closure(rootfs, strict_out.split(), strict_dest)
    assert in_chroot(strict_dest, "/usr/bin/curl", "--version").returncode == 0
    assert len(strict_out.split()) < len(out.split())


def test_ruby_with_pg_and_nokogiri_runs_from_its_closure(image, rootfs: Path, tmp_path: Path, chroot_ok) -> None:
    args = ["--binary", "/usr/bin/ruby"] + [a for d in RUBY_EXT_DIRS for a in ("--path", d)]
    code, out, err = bilge("deps", f"docker-archive:{image.archive}", *args, "--format", "list")
    assert code == 0, err
    dest = tmp_path / "ruby"
    copy_closure(rootfs, out.split(), dest, RUBY_DATA_DIRS)
    script = 'require "pg"; require "nokogiri"; puts PG.library_version > 0, Nokogiri::XML("<a><b/></a>").root.name'
    p = in_chroot(dest, "/usr/bin/ruby", "-e", script)
    assert p.returncode == 0 and p.stdout.split() == ["true", "a"], p.stderr
    # and without the libraries bilge named, the same check fails (the test can fail)
    pq = next(Path(dest, p_.lstrip("/")) for p_ in out.split() if "/libpq.so.5." in p_)
    pq.unlink()
    assert in_chroot(dest, "/usr/bin/ruby", "-e", 'require "pg"').returncode != 0


def test_origin_and_musl_programs_run_from_their_closure(image, rootfs: Path, tmp_path: Path, chroot_ok) -> None:
    for prog, expect in (("/usr/local/bin/hello", "HELLO+WORLD"), ("/opt/musl/bin/mhello", "MUSL-WORLD")):
        if not (rootfs / prog.lstrip("/")).exists():
            continue
        code, out, err = bilge("deps", f"docker-archive:{image.archive}", "--binary", prog, "--format", "list")
        assert code == 0, err
        dest = tmp_path / Path(prog).name
        copy_closure(rootfs, out.split(), dest)
        p = in_chroot(dest, prog)
        assert p.returncode == 0 and p.stdout.strip() == expect, p.stderr


# -- missing libraries, entrypoint -----------------------------------------------------------------


def test_removed_library_is_missing_with_who_needs_it(image, rootfs: Path, tmp_path: Path, docker_engine) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {image.tag}\nRUN rm -f {LIBDIR}/libpq.so.5*\nENTRYPOINT [\"hello\"]\nCMD [\"--x\"]\n")
    tag = "deps-it-missing:latest"
    docker_build(ctx, tag)
    try:
        archive = docker_save(tag, tmp_path / "missing.tar")
    finally:
        docker_rmi(tag)
    pg = next(p for p in elf_files_under(rootfs, RUBY_EXT_DIRS) if p.endswith("/pg_ext.so"))
    code, out, _ = bilge("deps", f"docker-archive:{archive}", "--binary", pg, "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert doc["missing"] == [{"soname": "libpq.so.5", "needed_by": [pg], "reason": None}]
    code, text, _ = bilge("deps", f"docker-archive:{archive}", "--binary", pg)
    assert code == 1 and "libpq.so.5" in text and "Missing" in text
    code, out, _ = bilge("deps", f"docker-archive:{archive}", "--entrypoint", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert [r["canonical"] for r in doc["roots"]] == ["/opt/app/bin/hello"]


# -- the generated Dockerfile lines, built for real ----------------------------------------------------


def layer_members(archive: Path) -> dict[str, tarfile.TarInfo]:
    """Every entry of every layer of a `docker save` archive (plain tarfile: independent of bilge)."""
    members: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(outer.extractfile(layer).read())) as lt:  # type: ignore[union-attr]
                for m in lt.getmembers():
                    members[m.name.lstrip("./")] = m
    return members


@pytest.mark.parametrize("mode", ["stage", "run"])
def test_dockerfile_output_builds_and_runs(image, tmp_path: Path, docker_engine, mode: str) -> None:
    code, out, err = bilge("deps", f"docker-archive:{image.archive}", "--binary", "/usr/bin/curl", "--strict",
                           "--format", "dockerfile", "--from", "builder", "--links", mode)
    assert code == 0, err
    lines = out.splitlines()
    if mode == "stage":
        split = next(i for i, ln in enumerate(lines) if ln.startswith("COPY --from=builder-deps"))
        dockerfile = (f"FROM {image.tag} AS builder\n" + "\n".join(lines[:split]) + "\nFROM scratch\n"
                      + "\n".join(lines[split:]) + '\nENTRYPOINT ["/usr/bin/curl"]\n')
    else:
        dockerfile = (f"FROM {image.tag} AS builder\n"
                      "FROM bilge-base:bookworm AS bb\n"
                      "RUN apt-get update && apt-get install -y --no-install-recommends busybox-static\n"
                      "FROM scratch\nCOPY --from=bb /bin/busybox /bin/busybox\n"
                      'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
                      + out + 'ENTRYPOINT ["/usr/bin/curl"]\n')
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    tag = f"deps-it-dockerfile-{mode}:latest"
    docker_build(ctx, tag)
    try:
        p = subprocess.run([docker_engine.client, "run", "--rm", tag, "--version"], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0 and p.stdout.startswith("curl "), p.stderr
        members = layer_members(docker_save(tag, tmp_path / "out.tar"))
    finally:
        docker_rmi(tag)
    link = members["usr/lib/x86_64-linux-gnu/libcurl.so.4"]
    assert link.issym() and link.linkname == "libcurl.so.4.8.0"
    assert members["lib64"].issym() and members["lib64"].linkname == "usr/lib64"
    assert members["usr/lib64/ld-linux-x86-64.so.2"].issym()
    assert members["usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0"].isfile()
