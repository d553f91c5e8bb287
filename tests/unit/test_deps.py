"""The resolver against the real loaders: every rule is checked by running the program in the root.

Each test builds a small root with gcc/musl-gcc (see test_deps_roots.py), asks bilge for the closure
through :class:`bilge.deps.DirView`, and compares it with what the real glibc loader does in a chroot
(``LD_TRACE_LOADED_OBJECTS=1`` lists every object it maps, ``LD_DEBUG=files`` every dlopen) or, for
musl, with the program's output. ``realpath`` run inside the chroot gives canonical paths.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import argv, which

sys.path.insert(0, str(Path(__file__).parent))
from test_deps_roots import HOST_LIBDIR, Root, can_chroot, have_gcc, have_musl, set_machine  # noqa: E402

from bilge.deps import DirView, closure  # noqa: E402
from bilge.errors import BilgeError  # noqa: E402

pytestmark = pytest.mark.skipif(not have_gcc(), reason="needs gcc and the host's glibc")
needs_chroot = pytest.mark.skipif(not can_chroot(), reason="needs root and chroot to run the real loader")
needs_musl = pytest.mark.skipif(not have_musl(), reason="needs musl-gcc (Debian musl-tools)")

LIBDIR = "/usr/lib/x86_64-linux-gnu"


@pytest.fixture
def root(tmp_path: Path) -> Root:
    r = Root(tmp_path / "root", tmp_path / "work").glibc()
    for tool in ("realpath", "env"):
        r.copy(Path("/usr/bin") / tool, f"usr/bin/{tool}", 0o755)
    return r


# -- the independent side: the real loader ----------------------------------------------------------


def chroot_realpath(r: Root, paths: list[str]) -> set[str]:
    if not paths:
        return set()
    out = subprocess.run([*argv("chroot"), str(r.path), "/usr/bin/realpath",
                          "-e", *paths], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def traced(r: Root, prog: str, env: dict[str, str] | None = None) -> tuple[dict[str, str | None], str]:
    """What glibc's loader maps for ``prog``: {name: path or None (not found)}, plus stderr."""
    p = r.run(prog, {"LD_TRACE_LOADED_OBJECTS": "1", **(env or {})})
    found: dict[str, str | None] = {}
    for line in p.stdout.splitlines():
        line = line.strip()
        m = re.match(r"(\S+) => (\S+)", line)
        if m:
            found[m.group(1)] = None if m.group(2) == "not" else m.group(2)
        elif line.startswith("/"):
            found[line.split()[0]] = line.split()[0]
    return found, p.stderr


def loader_files(r: Root, prog: str, env: dict[str, str] | None = None) -> set[str]:
    """Canonical paths of every object glibc maps for ``prog`` (the program included)."""
    found, err = traced(r, prog, env)
    assert found, f"the loader printed nothing: {err}"
    assert None not in found.values(), f"loader misses libraries: {found}"
    return chroot_realpath(r, [p for p in found.values() if p and p != "linux-vdso.so.1"] + [prog])


def dlopened(r: Root, prog: str, env: dict[str, str] | None = None) -> set[str]:
    """Objects whose constructors glibc ran (LD_DEBUG=files): includes dlopen'ed ones."""
    p = r.run(prog, {"LD_DEBUG": "files", **(env or {})})
    paths = re.findall(r"calling init: (\S+)", p.stderr)
    return chroot_realpath(r, paths)


def needed_files(result) -> set[str]:
    return {f.path for f in result.files if f.kind == "file" and f.role in ("root", "needed", "interp")}


def deps(r: Root, *binaries: str, env: dict[str, str] | None = None, **kw):
    config = {"Env": [f"{k}={v}" for k, v in (env or {}).items()]}
    return closure(DirView(r.path), binaries=list(binaries), config=config, **kw)


def origin_of(result, name: str) -> set[str]:
    return {e.via for t in result.trees.values() for edges in t.values() for e in edges if e.name == name}


# -- glibc rules -------------------------------------------------------------------------------------


@needs_chroot
def test_plain_program_matches_loader(root: Root) -> None:
    lib = root.lib(f"{LIBDIR}/libfoo.so.1.2.3", "libfoo.so.1", "foo", "FOO")
    root.symlink(f"{LIBDIR}/libfoo.so.1", "libfoo.so.1.2.3")
    root.prog("usr/bin/p", ((lib, "foo"),))
    res = deps(root, "/usr/bin/p")
    assert not res.missing
    assert needed_files(res) == loader_files(root, "/usr/bin/p")
    # every symlink on the way is part of the answer: the SONAME link and the loader's /lib64 path
    links = {f.path: f.target for f in res.files if f.kind == "symlink"}
    assert links[f"{LIBDIR}/libfoo.so.1"] == "libfoo.so.1.2.3"
    assert "/lib64" in links and "/usr/lib64/ld-linux-x86-64.so.2" in links
    assert root.run("/usr/bin/p").stdout.strip() == "FOO"


@needs_chroot
def test_rpath_is_inherited_along_the_loading_chain(root: Root) -> None:
    libb = root.lib("opt/r/libb.so.1", "libb.so.1", "b", "B")
    liba = root.lib("opt/r/liba.so.1", "liba.so.1", "a", "A", deps=((libb, "b"),))
    root.prog("usr/bin/p", ((liba, "a"),), rpath="/opt/r")
    res = deps(root, "/usr/bin/p")
    assert not res.missing
    assert "/opt/r/libb.so.1" in needed_files(res)
    assert origin_of(res, "libb.so.1") == {"rpath"}
    assert needed_files(res) == loader_files(root, "/usr/bin/p")


@needs_chroot
def test_runpath_is_not_inherited(root: Root) -> None:
    libb = root.lib("opt/r/libb.so.1", "libb.so.1", "b", "B")
    liba = root.lib("opt/r/liba.so.1", "liba.so.1", "a", "A", deps=((libb, "b"),))
    root.prog("usr/bin/p", ((liba, "a"),), runpath="/opt/r")
    res = deps(root, "/usr/bin/p")
    assert [(m.soname, m.needed_by) for m in res.missing] == [("libb.so.1", ("/opt/r/liba.so.1",))]
    found, _ = traced(root, "/usr/bin/p")
    assert found["libb.so.1"] is None and found["liba.so.1"] == "/opt/r/liba.so.1"


@needs_chroot
def test_runpath_of_the_requester_disables_the_rpath_chain(root: Root) -> None:
    libb = root.lib("opt/r/libb.so.1", "libb.so.1", "b", "B")
    liba = root.lib("opt/r/liba.so.1", "liba.so.1", "a", "A", deps=((libb, "b"),), runpath="/opt/elsewhere")
    root.prog("usr/bin/p", ((liba, "a"),), rpath="/opt/r")
    res = deps(root, "/usr/bin/p")
    assert [m.soname for m in res.missing] == ["libb.so.1"]
    found, _ = traced(root, "/usr/bin/p")
    assert found["libb.so.1"] is None


@needs_chroot
def test_runpath_wins_over_rpath_in_the_same_object(root: Root) -> None:
    """An object with both DT_RPATH and DT_RUNPATH: the RPATH is ignored (glibc's get-dynamic-info)."""
    root.lib("opt/a/libb.so.1", "libb.so.1", "b", "B-from-rpath")
    libb = root.lib("opt/b/libb.so.1", "libb.so.1", "b", "B-from-runpath")
    # ld writes one of them; write DT_RPATH=/opt/a and an auxiliary filter "/opt/b", then turn the
    # DT_AUXILIARY tag into DT_RUNPATH so the object carries both.
    liba = root.lib("opt/l/liba.so.1", "liba.so.1", "a", "A", deps=((libb, "b"),), rpath="/opt/a",
                    flags=("-Wl,-f,/opt/b",))
    data = bytearray(liba.read_bytes())
    aux = (0x7FFFFFFD).to_bytes(8, "little")
    at = data.find(aux)
    assert at > 0
    data[at : at + 8] = (29).to_bytes(8, "little")
    liba.write_bytes(bytes(data))
    root.prog("usr/bin/p", ((liba, "a"),), rpath="/opt/l")
    res = deps(root, "/usr/bin/p")
    assert "/opt/b/libb.so.1" in needed_files(res) and "/opt/a/libb.so.1" not in needed_files(res)
    assert needed_files(res) == loader_files(root, "/usr/bin/p")
    assert root.run("/usr/bin/p").stdout.strip() == "A+B-from-runpath"


@needs_chroot
def test_search_order_rpath_then_ld_library_path_then_runpath(root: Root) -> None:
    for d in ("a", "b"):
        root.lib(f"opt/{d}/libfoo.so.1", "libfoo.so.1", "foo", f"FOO-{d}")
    lib = root.p("opt/a/libfoo.so.1")
    env = {"LD_LIBRARY_PATH": "/opt/b"}
    root.prog("usr/bin/rp", ((lib, "foo"),), rpath="/opt/a")
    root.prog("usr/bin/rn", ((lib, "foo"),), runpath="/opt/a")
    res_rp = deps(root, "/usr/bin/rp", env=env)
    res_rn = deps(root, "/usr/bin/rn", env=env)
    assert "/opt/a/libfoo.so.1" in needed_files(res_rp)
    assert "/opt/b/libfoo.so.1" in needed_files(res_rn)
    assert origin_of(res_rn, "libfoo.so.1") == {"ld_library_path"}
    assert needed_files(res_rp) == loader_files(root, "/usr/bin/rp", env)
    assert needed_files(res_rn) == loader_files(root, "/usr/bin/rn", env)


@needs_chroot
def test_origin_of_the_program_is_its_real_directory(root: Root) -> None:
    lib = root.lib("opt/app/lib/libapp.so.1", "libapp.so.1", "app", "APP")
    root.prog("opt/app/bin/app", ((lib, "app"),), runpath="$ORIGIN/../lib")
    root.symlink("usr/local/bin/app", "/opt/app/bin/app")
    res = deps(root, "/usr/local/bin/app")
    assert not res.missing
    assert "/opt/app/lib/libapp.so.1" in needed_files(res)
    assert "/usr/local/bin/app" in {f.path for f in res.files if f.kind == "symlink"}
    assert needed_files(res) == loader_files(root, "/usr/local/bin/app")
    assert root.run("/usr/local/bin/app").stdout.strip() == "APP"


@needs_chroot
def test_origin_of_a_library_is_the_directory_it_was_opened_from(root: Root) -> None:
    """glibc takes a library's $ORIGIN from the path it opened, without resolving symlinks."""
    root.lib("opt/plug/libhelper.so.1", "libhelper.so.1", "helper", "HELPER-next-to-file")
    helper = root.lib("opt/links/libhelper.so.1", "libhelper.so.1", "helper", "HELPER-next-to-link")
    plug = root.lib("opt/plug/libplug.so.1", "libplug.so.1", "plug", "PLUG", deps=((helper, "helper"),),
                    runpath="$ORIGIN")
    root.symlink("opt/links/libplug.so.1", "/opt/plug/libplug.so.1")
    root.prog("usr/bin/p", ((plug, "plug"),), rpath="/opt/links")
    res = deps(root, "/usr/bin/p")
    assert not res.missing
    assert "/opt/links/libhelper.so.1" in needed_files(res)
    assert needed_files(res) == loader_files(root, "/usr/bin/p")
    assert root.run("/usr/bin/p").stdout.strip() == "PLUG+HELPER-next-to-link"


@needs_chroot
def host_platform() -> str:
    """What this machine's glibc loader expands $PLATFORM to, as `ld.so --help` reports it."""
    out = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--help"], capture_output=True, text=True).stdout
    m = re.search(r"^\s*(\S+) \(AT_PLATFORM", out, re.M)
    return m.group(1) if m else "x86_64"


def test_lib_and_platform_tokens(root: Root) -> None:
    # $PLATFORM depends on the CPU (x86_64, or haswell on CPUs with AVX2...): the library goes where
    # the real loader looks on this machine, and bilge must find it there without knowing the CPU.
    lib1 = root.lib("opt/lib/x86_64-linux-gnu/libl.so.1", "libl.so.1", "l", "L")
    lib2 = root.lib(f"opt/{host_platform()}/libpl.so.1", "libpl.so.1", "pl", "PL")
    root.prog("usr/bin/p", ((lib1, "l"), (lib2, "pl")), runpath="/opt/$LIB:/opt/${PLATFORM}")
    res = deps(root, "/usr/bin/p")
    assert not res.missing
    assert needed_files(res) == loader_files(root, "/usr/bin/p")


@pytest.mark.parametrize("platform", ["x86_64", "haswell", "xeon_phi"])
def test_platform_token_finds_every_cpu_variant(root: Root, platform: str) -> None:
    lib = root.lib(f"opt/{platform}/libpl.so.1", "libpl.so.1", "pl", "PL")
    root.prog("usr/bin/p", ((lib, "pl"),), runpath="/opt/$PLATFORM")
    res = deps(root, "/usr/bin/p")
    assert not res.missing
    assert f"/opt/{platform}/libpl.so.1" in needed_files(res)


@needs_chroot
def test_ld_so_conf_include_globs_and_cache(root: Root) -> None:
    lib = root.lib("opt/conf/libc1.so.1", "libc1.so.1", "c1", "C1")
    root.lib("opt/conf2/libc2.so.1", "libc2.so.1", "c2", "C2")
    lib2 = root.p("opt/conf2/libc2.so.1")
    root.ld_so_conf("include /etc/ld.so.conf.d/*.conf\n", {
        "etc/ld.so.conf.d/10-one.conf": "# comment\n/opt/conf/\n",
        "etc/ld.so.conf.d/20-two.conf": "include ../extra/*.conf\n",
        "etc/extra/x.conf": "/opt/conf2\n",
        "etc/ld.so.conf.d/ignored.txt": "/opt/nothing\n",
    })
    root.prog("usr/bin/p", ((lib, "c1"), (lib2, "c2")))
    root.ldconfig()
    res = deps(root, "/usr/bin/p")
    assert not res.missing and not res.notes
    assert origin_of(res, "libc1.so.1") == {"ld.so.cache"} == origin_of(res, "libc2.so.1")
    assert needed_files(res) == loader_files(root, "/usr/bin/p")


@needs_chroot
def test_ld_so_conf_without_cache_is_found_but_flagged(root: Root) -> None:
    lib = root.lib("opt/conf/libc1.so.1", "libc1.so.1", "c1", "C1")
    root.ld_so_conf("/opt/conf\n")
    root.prog("usr/bin/p", ((lib, "c1"),))
    res = deps(root, "/usr/bin/p")
    assert "/opt/conf/libc1.so.1" in needed_files(res)
    assert any("ldconfig" in n and "libc1.so.1" in n for n in res.notes)
    found, _ = traced(root, "/usr/bin/p")  # the loader itself does not read ld.so.conf
    assert found["libc1.so.1"] is None


@needs_chroot
def test_stale_cache_entry_is_reported(root: Root) -> None:
    lib = root.lib("opt/conf/libc1.so.1", "libc1.so.1", "c1", "C1")
    root.lib("opt/conf/libgone.so.1", "libgone.so.1", "gone", "GONE")
    root.ld_so_conf("/opt/conf\n")
    root.ldconfig()
    os.remove(root.p("opt/conf/libgone.so.1"))
    gone = root.lib("tmp-build/libgone.so.1", "libgone.so.1", "gone", "GONE")
    root.prog("usr/bin/p", ((lib, "c1"), (gone, "gone")))
    os.remove(gone)
    res = deps(root, "/usr/bin/p")
    assert [m.soname for m in res.missing] == ["libgone.so.1"]
    assert any("stale" in n and "libgone.so.1" in n for n in res.notes)
    assert traced(root, "/usr/bin/p")[0]["libgone.so.1"] is None


@needs_chroot
def test_default_directories_come_from_the_loader(root: Root) -> None:
    plain = root.lib("usr/lib/libplain.so.1", "libplain.so.1", "plain", "PLAIN")
    local = root.lib("usr/local/lib/liblocal.so.1", "liblocal.so.1", "local", "LOCAL")
    root.prog("usr/bin/p", ((plain, "plain"), (local, "local")))
    res = deps(root, "/usr/bin/p")
    assert "/usr/lib/libplain.so.1" in needed_files(res)
    assert [m.soname for m in res.missing] == ["liblocal.so.1"]  # /usr/local/lib is not a default dir
    found, _ = traced(root, "/usr/bin/p")
    assert found["liblocal.so.1"] is None and found["libplain.so.1"] == "/lib/libplain.so.1"


@needs_chroot
def test_nodeflib_skips_default_directories(root: Root) -> None:
    """A requester with DF_1_NODEFLIB (ld sets it on shared objects only) does not search the defaults."""
    libb = root.lib(f"{LIBDIR}/libb.so.1", "libb.so.1", "b", "B")
    liba = root.lib("opt/a/liba.so.1", "liba.so.1", "a", "A", deps=((libb, "b"),), flags=("-Wl,-z,nodefaultlib",))
    root.prog("usr/bin/p", ((liba, "a"),), rpath="/opt/a")
    res = deps(root, "/usr/bin/p")
    assert [(m.soname, m.needed_by) for m in res.missing] == [("libb.so.1", ("/opt/a/liba.so.1",))]
    assert traced(root, "/usr/bin/p")[0]["libb.so.1"] is None
    os.rename(root.p(f"{LIBDIR}/libb.so.1"), root.p("opt/a/libb.so.1"))  # the inherited RPATH still works
    res = deps(root, "/usr/bin/p")
    assert not res.missing and needed_files(res) == loader_files(root, "/usr/bin/p")


@needs_chroot
def test_glibc_hwcaps_builds_are_included(root: Root) -> None:
    lib = root.lib(f"{LIBDIR}/libfoo.so.1", "libfoo.so.1", "foo", "FOO-base")
    for level in ("x86-64-v2", "x86-64-v3"):
        root.lib(f"{LIBDIR}/glibc-hwcaps/{level}/libfoo.so.1", "libfoo.so.1", "foo", f"FOO-{level}")
    root.prog("usr/bin/p", ((lib, "foo"),))
    res = deps(root, "/usr/bin/p")
    hw = {f.path for f in res.files if f.role == "hwcaps"}
    assert hw == {f"{LIBDIR}/glibc-hwcaps/x86-64-v2/libfoo.so.1", f"{LIBDIR}/glibc-hwcaps/x86-64-v3/libfoo.so.1"}
    picked = loader_files(root, "/usr/bin/p")  # whatever this CPU makes the loader pick is in the closure
    assert picked <= needed_files(res) | hw
    assert root.run("/usr/bin/p").stdout.strip().startswith("FOO-")


@needs_chroot
def test_wrong_class_and_machine_earlier_in_path_are_skipped(root: Root) -> None:
    good = root.lib("opt/c/libfoo.so.1", "libfoo.so.1", "foo", "FOO-good")
    root.lib("opt/a/libfoo.so.1", "libfoo.so.1", "foo", "FOO-32", m32=True)
    root.copy(good, "opt/b/libfoo.so.1")
    set_machine(root.p("opt/b/libfoo.so.1"), 183)  # EM_AARCH64
    root.prog("usr/bin/p", ((good, "foo"),), rpath="/opt/a:/opt/b:/opt/c")
    res = deps(root, "/usr/bin/p")
    assert not res.missing
    assert "/opt/c/libfoo.so.1" in needed_files(res)
    assert not {"/opt/a/libfoo.so.1", "/opt/b/libfoo.so.1"} & {f.path for f in res.files}
    assert needed_files(res) == loader_files(root, "/usr/bin/p")
    assert root.run("/usr/bin/p").stdout.strip() == "FOO-good"


@needs_chroot
@pytest.mark.parametrize("bad", ["text", "dir", "big-endian"])
def test_unloadable_candidate_stops_the_search(root: Root, bad: str) -> None:
    good = root.lib("opt/c/libfoo.so.1", "libfoo.so.1", "foo", "FOO-good")
    if bad == "text":
        root.write("opt/a/libfoo.so.1", "INPUT(-lfoo)\n")
    elif bad == "dir":
        root.mkdir("opt/a/libfoo.so.1")
    else:
        data = bytearray(good.read_bytes())
        data[5] = 2
        root.write("opt/a/libfoo.so.1", bytes(data))
    root.prog("usr/bin/p", ((good, "foo"),), rpath="/opt/a:/opt/c")
    res = deps(root, "/usr/bin/p")
    assert [m.soname for m in res.missing] == ["libfoo.so.1"]
    assert "/opt/a/libfoo.so.1" in (res.missing[0].reason or "")
    p = root.run("/usr/bin/p")
    assert p.returncode == 127 and "/opt/a/libfoo.so.1" in p.stderr


@needs_chroot
def test_already_loaded_soname_is_reused(root: Root) -> None:
    """A DT_NEEDED name matching the SONAME of a loaded object reuses it (no search)."""
    root.lib("opt/a/libx.so", "libx.so.1", "x", "X-opt")  # file name differs from its SONAME
    build = root.work / "nosoname"
    build.mkdir()
    # linked as -lx against a copy without SONAME: the program's DT_NEEDED is "libx.so"
    subprocess.run([*argv("gcc"), "-shared", "-fPIC", "-o", str(build / "libx.so"),
                    str(root._src('const char *x(void){return "";}'))], check=True)
    xdef = root.lib(f"{LIBDIR}/libx.so.1", "libx.so.1", "x", "X-default")
    req = root.lib(f"{LIBDIR}/libreq.so.1", "libreq.so.1", "req", "REQ", deps=((xdef, "x"),))
    root.prog("usr/bin/p", ((None, "x"), (req, "req")), rpath="/opt/a", extra_libs=(f"-L{build}", "-lx"))
    res = deps(root, "/usr/bin/p")
    assert not res.missing
    assert "/opt/a/libx.so" in needed_files(res) and f"{LIBDIR}/libx.so.1" not in needed_files(res)
    assert needed_files(res) == loader_files(root, "/usr/bin/p")


@needs_chroot
def test_ld_so_preload_is_loaded_for_every_program(root: Root) -> None:
    root.lib(f"{LIBDIR}/libpre.so.1", "libpre.so.1", "pre", "PRE")
    root.write("etc/ld.so.preload", "/usr/lib/x86_64-linux-gnu/libpre.so.1\n")
    root.prog("usr/bin/p", ())
    res = deps(root, "/usr/bin/p")
    assert f"{LIBDIR}/libpre.so.1" in needed_files(res)
    assert needed_files(res) == loader_files(root, "/usr/bin/p")


def test_missing_interpreter_and_libraries_name_who_needs_them(root: Root) -> None:
    gone = root.lib("tmp-build/libgone.so.1", "libgone.so.1", "gone", "GONE")
    root.prog("usr/bin/p", ((gone, "gone"),), flags=("-Wl,--dynamic-linker=/lib/ld-nowhere.so.1",))
    os.remove(gone)
    res = deps(root, "/usr/bin/p")
    assert {(m.soname, m.needed_by) for m in res.missing} == {
        ("libgone.so.1", ("/usr/bin/p",)),
        ("/lib/ld-nowhere.so.1", ("/usr/bin/p",)),
    }


def test_symlinks_never_escape_the_root(root: Root, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(root.p(f"{LIBDIR}/libc.so.6"), outside / "libevil.so.1")
    # ../../../../.. from /usr/lib/x86_64-linux-gnu climbs above the root on the host; inside the
    # image it stops at "/" and points to /outside/libevil.so.1, which does not exist there.
    root.symlink(f"{LIBDIR}/libevil.so.1", "../../../../../../../../outside/libevil.so.1")
    root.symlink(f"{LIBDIR}/libloop.so.1", "libloop.so.1")
    evil = root.lib("tmp-build/libevil.so.1", "libevil.so.1", "evil", "E")
    loop = root.lib("tmp-build/libloop.so.1", "libloop.so.1", "loop", "L")
    root.prog("usr/bin/p", ((evil, "evil"), (loop, "loop")))
    res = deps(root, "/usr/bin/p")
    assert {m.soname for m in res.missing} == {"libevil.so.1", "libloop.so.1"}
    assert all(not f.path.startswith(str(tmp_path)) for f in res.files)


# -- dlopen'ed "likely needed" extras ----------------------------------------------------------------


@needs_chroot
def test_nss_modules_from_nsswitch_conf(root: Root) -> None:
    dep = root.lib(f"{LIBDIR}/libnssdep.so.1", "libnssdep.so.1", "nssdep", "D")
    root.lib(f"{LIBDIR}/libnss_mymod.so.2", "libnss_mymod.so.2", "_nss_mymod_dummy", "M", deps=((dep, "nssdep"),))
    root.write("etc/nsswitch.conf", "passwd: files mymod [NOTFOUND=return] absent\nhosts: files dns\n")
    root.prog("usr/bin/p", (), body='  getpwnam("nobody");\n', flags=("-include", "pwd.h"))
    res = deps(root, "/usr/bin/p")
    likely = {f.path: f.reason for f in res.files if f.role == "likely"}
    assert f"{LIBDIR}/libnss_mymod.so.2" in likely and "mymod" in likely[f"{LIBDIR}/libnss_mymod.so.2"]
    assert f"{LIBDIR}/libnssdep.so.1" in likely
    assert any(not x.present and "libnss_absent.so.2" in x.path for x in res.likely)
    # glibc >= 2.34 has "files" and "dns" built in: no libnss_files / libnss_dns
    assert not any("libnss_files" in x.path or "libnss_dns" in x.path for x in res.likely)
    loaded = dlopened(root, "/usr/bin/p")
    assert {f"{LIBDIR}/libnss_mymod.so.2", f"{LIBDIR}/libnssdep.so.1"} <= loaded
    strict = deps(root, "/usr/bin/p", strict=True)
    assert not any(f.role == "likely" for f in strict.files)


@needs_chroot
def test_gconv_modules_for_iconv_users(root: Root) -> None:
    gconv = HOST_LIBDIR / "gconv"
    if not (gconv / "UTF-16.so").is_file():
        pytest.skip("host has no gconv modules")
    for name in ("UTF-16.so", "gconv-modules"):
        root.copy(gconv / name, f"{LIBDIR}/gconv/{name}")
    root.prog("usr/bin/p", (), body='  iconv_open("UTF-16", "UTF-8");\n', flags=("-include", "iconv.h"))
    res = deps(root, "/usr/bin/p")
    likely = {f.path for f in res.files if f.role == "likely"}
    assert {f"{LIBDIR}/gconv/UTF-16.so", f"{LIBDIR}/gconv/gconv-modules"} <= likely
    assert f"{LIBDIR}/gconv/UTF-16.so" in dlopened(root, "/usr/bin/p")


@needs_chroot
def test_libgcc_s_for_thread_exit(root: Root) -> None:
    root.copy(HOST_LIBDIR / "libgcc_s.so.1", f"{LIBDIR}/libgcc_s.so.1")
    root.prog("usr/bin/p", (), body="  pthread_exit(0);\n", flags=("-include", "pthread.h"))
    res = deps(root, "/usr/bin/p")
    assert f"{LIBDIR}/libgcc_s.so.1" in {f.path for f in res.files if f.role == "likely"}
    assert f"{LIBDIR}/libgcc_s.so.1" in dlopened(root, "/usr/bin/p")


def test_loader_is_likely_for_a_shared_object_root(root: Root) -> None:
    lib = root.lib("opt/ext/ext.so", "ext.so", "ext", "EXT")
    res = deps(root, "/opt/ext/ext.so")
    # libc.so.6 needs the loader by its SONAME anyway; the PT_INTERP path programs use is likely
    assert {f"{LIBDIR}/libc.so.6", f"{LIBDIR}/ld-linux-x86-64.so.2", lib.as_posix()[len(str(root.path)):]} <= needed_files(res)
    likely_links = {f.path for f in res.files if f.role == "likely" and f.kind == "symlink"}
    assert "/usr/lib64/ld-linux-x86-64.so.2" in likely_links


# -- roots: scripts, entrypoint, directories ---------------------------------------------------------


def test_script_entrypoint_through_env_and_path(root: Root) -> None:
    lib = root.lib(f"{LIBDIR}/libfoo.so.1", "libfoo.so.1", "foo", "FOO")
    root.prog("opt/tool/bin/tool", ((lib, "foo"),))
    root.symlink("usr/local/bin/tool", "/opt/tool/bin/tool")
    root.write("usr/local/bin/start", "#!/usr/bin/env tool\necho\n", 0o755)
    config = {"Entrypoint": ["start"], "Cmd": ["--flag"], "Env": ["PATH=/usr/local/bin:/usr/bin"]}
    res = closure(DirView(root.path), entrypoint=True, config=config)
    kinds = {r.canonical: r.kind for r in res.roots}
    assert kinds == {"/usr/local/bin/start": "script", "/usr/bin/env": "elf", "/opt/tool/bin/tool": "elf"}
    assert {"/usr/local/bin/start", "/usr/bin/env", "/opt/tool/bin/tool", f"{LIBDIR}/libfoo.so.1"} <= needed_files(res)
    assert "/usr/local/bin/tool" in {f.path for f in res.files if f.kind == "symlink"}


def test_shell_form_entrypoint_resolves_the_command(root: Root) -> None:
    root.prog("usr/bin/server", ())
    root.copy(Path("/bin/sh").resolve(), "usr/bin/dash", 0o755)
    root.symlink("bin", "usr/bin")
    root.symlink("usr/bin/sh", "dash")
    config = {"Cmd": ["/bin/sh", "-c", "FOO=1 exec server --port 80"]}
    res = closure(DirView(root.path), entrypoint=True, config=config)
    assert {r.canonical for r in res.roots} == {"/usr/bin/dash", "/usr/bin/server"}


def test_path_roots_every_elf_under_a_directory(root: Root) -> None:
    lib = root.lib("opt/app/lib/libapp.so.1", "libapp.so.1", "app", "APP")
    root.prog("opt/app/bin/one", ((lib, "app"),), runpath="$ORIGIN/../lib")
    root.write("opt/app/bin/readme.txt", "not elf")
    root.symlink("opt/app/bin/two", "one")
    res = closure(DirView(root.path), paths=["/opt/app"])
    assert {r.canonical for r in res.roots} == {"/opt/app/bin/one", "/opt/app/lib/libapp.so.1"}
    assert not res.missing


def test_bad_roots_are_usage_errors(root: Root) -> None:
    root.write("usr/bin/data", "plain text")
    for bad, msg in (("/usr/bin/none", "not found"), ("/usr/bin/data", "neither an ELF"), ("/usr", "not a regular")):
        with pytest.raises(BilgeError, match=msg):
            deps(root, bad)
    with pytest.raises(BilgeError, match="nothing to resolve"):
        closure(DirView(root.path))


def test_usr_lib_comparison(root: Root) -> None:
    lib = root.lib(f"{LIBDIR}/libfoo.so.1", "libfoo.so.1", "foo", "FOO")
    root.lib(f"{LIBDIR}/libunused.so.1", "libunused.so.1", "unused", "U")
    root.write("usr/lib/os-release-like", "x" * 1000)
    root.prog("usr/bin/p", ((lib, "foo"),))
    res = deps(root, "/usr/bin/p", strict=True)
    (usr_lib,) = [d for d in res.dirs if d.path == "/usr/lib"]
    files = [p for p in root.p("usr/lib").rglob("*") if p.is_file() and not p.is_symlink()]
    assert usr_lib.files == len(files) and usr_lib.bytes == sum(p.stat().st_size for p in files)
    expected = [f"{LIBDIR}/libfoo.so.1", f"{LIBDIR}/libc.so.6", f"{LIBDIR}/ld-linux-x86-64.so.2"]
    assert usr_lib.needed_files == 3
    assert usr_lib.needed_bytes == sum(root.p(p).stat().st_size for p in expected)


# -- musl --------------------------------------------------------------------------------------------


@needs_musl
@needs_chroot
def test_musl_path_file_reserved_names_and_rpath_chain(tmp_path: Path) -> None:
    r = Root(tmp_path / "root", tmp_path / "work").musl()
    libb = r.lib("opt/r/libb.so.1", "libb.so.1", "b", "B", musl=True)
    liba = r.lib("opt/r/liba.so.1", "liba.so.1", "a", "A", musl=True, deps=((libb, "b"),))
    sys_ = r.lib("usr/lib/x86_64-linux-musl/libsys.so.1", "libsys.so.1", "sys", "SYS", musl=True)
    r.prog("usr/bin/p", ((liba, "a"), (sys_, "sys")), musl=True, runpath="/opt/r")
    res = closure(DirView(r.path), binaries=["/usr/bin/p"])
    assert not res.missing
    files = needed_files(res)
    # RUNPATH is inherited by musl (glibc would not find libb.so.1)
    assert {"/opt/r/liba.so.1", "/opt/r/libb.so.1", "/usr/lib/x86_64-linux-musl/libsys.so.1",
            "/usr/lib/x86_64-linux-musl/libc.so"} <= files
    assert {r_.flavor for r_ in res.roots} == {"musl"}
    links = {f.path for f in res.files if f.kind == "symlink"}
    assert "/usr/lib/ld-musl-x86_64.so.1" in links and "/lib" in links
    assert r.run("/usr/bin/p").stdout.split() == ["A+B", "SYS"]


@needs_musl
@needs_chroot
def test_musl_takes_the_first_file_even_of_the_wrong_class(tmp_path: Path) -> None:
    r = Root(tmp_path / "root", tmp_path / "work").musl()
    good = r.lib("opt/b/libfoo.so.1", "libfoo.so.1", "foo", "FOO", musl=True)
    r.lib("opt/a/libfoo.so.1", "libfoo.so.1", "foo", "FOO32", m32=True)
    r.prog("usr/bin/p", ((good, "foo"),), musl=True, rpath="/opt/a:/opt/b")
    res = closure(DirView(r.path), binaries=["/usr/bin/p"])
    assert [m.soname for m in res.missing] == ["libfoo.so.1"]
    assert "ELFCLASS32" in (res.missing[0].reason or "")
    assert r.run("/usr/bin/p").returncode != 0
    os.remove(r.p("opt/a/libfoo.so.1"))
    res = closure(DirView(r.path), binaries=["/usr/bin/p"])
    assert not res.missing and r.run("/usr/bin/p").stdout.strip() == "FOO"


@needs_musl
def test_musl_default_path_without_path_file(tmp_path: Path) -> None:
    r = Root(tmp_path / "root", tmp_path / "work").musl()
    os.remove(r.p("etc/ld-musl-x86_64.path"))
    lib = r.lib("usr/local/lib/libloc.so.1", "libloc.so.1", "loc", "LOC", musl=True)
    r.prog("usr/bin/p", ((lib, "loc"),), musl=True)
    res = closure(DirView(r.path), binaries=["/usr/bin/p"])
    assert "/usr/local/lib/libloc.so.1" in needed_files(res)
    if can_chroot():
        assert r.run("/usr/bin/p").stdout.strip() == "LOC"


# -- cross-check with pax-utils lddtree on the host's own root ----------------------------------------


@pytest.mark.skipif(which("lddtree") is None, reason="needs pax-utils lddtree")
@pytest.mark.parametrize("prog", ["/usr/bin/curl", "/usr/bin/python3", "/usr/bin/ssh", "/usr/bin/git"])
def test_same_closure_as_lddtree_on_the_host_root(prog: str) -> None:
    if not os.path.isfile(prog):
        pytest.skip(f"{prog} not on this host")
    out = subprocess.run([*argv("lddtree"), "-l", prog], capture_output=True, text=True, check=True).stdout.split()
    theirs = {os.path.realpath(p) for p in out}
    ours = needed_files(closure(DirView("/"), binaries=[prog], strict=True))
    assert ours == theirs


def test_static_and_static_pie_roots_need_nothing(root: Root) -> None:
    src = root.work / "s.c"
    src.write_text("int main(void){return 0;}\n")
    for flag, name in (("-static", "st"), ("-static-pie", "stpie")):
        out = root.p(f"usr/bin/{name}")
        subprocess.run([*argv("gcc"), flag, "-o", str(out), str(src)], check=True)
    res = deps(root, "/usr/bin/st", "/usr/bin/stpie")
    assert {r.kind for r in res.roots} == {"static"}
    assert {f.path for f in res.files} == {"/usr/bin/st", "/usr/bin/stpie"}
    if can_chroot():
        assert root.run("/usr/bin/stpie").returncode == 0
