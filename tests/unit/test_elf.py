"""bilge.elf against binutils' readelf on objects compiled here, and on damaged files."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tools import argv, which

sys.path.insert(0, str(Path(__file__).parent))
from test_deps_roots import Root, have_gcc, have_musl, set_machine  # noqa: E402

from bilge.elf import ElfInfo, compatible, incompatibility, read_elf, read_elf_bytes  # noqa: E402

pytestmark = pytest.mark.skipif(not have_gcc() or which("readelf") is None, reason="needs gcc and readelf")


def readelf_facts(path: Path) -> dict:
    """What binutils says: NEEDED, RPATH, RUNPATH, SONAME, FLAGS_1 NODEFLIB, interpreter, class, machine."""
    d = subprocess.run([*argv("readelf"), "-W", "-d", "-l", "-h", str(path)], capture_output=True, text=True).stdout
    return {
        "needed": tuple(re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", d)),
        "rpath": (re.findall(r"\(RPATH\)\s+Library rpath: \[(.*)\]", d) or [None])[0],
        "runpath": (re.findall(r"\(RUNPATH\)\s+Library runpath: \[(.*)\]", d) or [None])[0],
        "soname": (re.findall(r"\(SONAME\)\s+Library soname: \[(.*)\]", d) or [None])[0],
        "nodeflib": bool(re.search(r"\(FLAGS_1\)\s+Flags:.*NODEFLIB", d)),
        "interp": (re.findall(r"\[Requesting program interpreter: (.*)\]", d) or [None])[0],
        "class": 64 if "ELF64" in d else 32,
        "dynamic": "There is no dynamic section" not in d,
    }


def ours(path: Path) -> ElfInfo:
    with open(path, "rb") as fh:
        info = read_elf(fh)
    assert info is not None and info.error is None
    return info


@pytest.fixture
def r(tmp_path: Path) -> Root:
    return Root(tmp_path / "root", tmp_path / "work")


def check(path: Path) -> ElfInfo:
    info, want = ours(path), readelf_facts(path)
    got = {"needed": info.needed, "rpath": info.rpath, "runpath": info.runpath, "soname": info.soname,
           "nodeflib": info.nodeflib, "interp": info.interp, "class": info.elf_class, "dynamic": info.dynamic}
    assert got == want
    return info


def test_dynamic_facts_match_readelf(r: Root) -> None:
    b = r.lib("l/libb.so.1", "libb.so.1", "b", "B")
    a = r.lib("l/liba.so.2", "liba.so.2", "a", "A", deps=((b, "b"),), rpath="$ORIGIN/../x:/opt/$LIB",
              flags=("-Wl,-z,nodefaultlib",))
    info = check(a)
    assert info.needed[0] == "libb.so.1" and info.nodeflib and info.rpath == "$ORIGIN/../x:/opt/$LIB"
    p = check(r.prog("bin/p", ((a, "a"),), runpath="/opt/r"))
    assert p.interp == "/lib64/ld-linux-x86-64.so.2" and p.runpath == "/opt/r" and p.e_type == "ET_DYN"
    assert p.machine == "EM_X86_64" and p.describe() == "ELF64 x86-64 LE"


def test_static_32bit_and_musl(r: Root) -> None:
    src = r.work / "s.c"
    src.write_text("int main(void){return 0;}\n")
    static = r.work / "static"
    subprocess.run([*argv("gcc"), "-static", "-o", str(static), str(src)], check=True)
    info = check(static)
    assert not info.dynamic and info.interp is None and info.needed == ()
    lib32 = r.lib("l/lib32.so.1", "lib32.so.1", "x", "X", m32=True)
    i32 = check(lib32)
    assert i32.elf_class == 32 and i32.machine == "EM_386" and i32.soname == "lib32.so.1"
    if have_musl():
        m = check(r.prog("bin/m", (), musl=True))
        assert m.interp == "/lib/ld-musl-x86_64.so.1" and m.needed == ("libc.so",)


def test_markers_name_imports_that_trigger_dlopen(r: Root) -> None:
    p = r.prog("bin/i", (), body='  iconv_open("a", "b");\n  pthread_exit(0);\n',
               flags=("-include", "iconv.h", "-include", "pthread.h"))
    assert ours(p).markers >= {"iconv_open", "pthread_exit"}
    q = r.prog("bin/q", ())
    assert not ours(q).markers & {"iconv_open", "pthread_exit", "pthread_cancel"}


def test_compatibility_rules(r: Root) -> None:
    a = r.lib("l/liba.so.1", "liba.so.1", "a", "A")
    base = ours(a)
    assert compatible(base, base) and incompatibility(base, base) == ""
    foreign = r.p("l/foreign.so")
    foreign.write_bytes(a.read_bytes())
    set_machine(foreign, 183)
    f = ours(foreign)
    assert f.machine == "EM_AARCH64" and not compatible(base, f) and "aarch64" in incompatibility(base, f)
    lib32 = ours(r.lib("l/lib32.so.1", "lib32.so.1", "x", "X", m32=True))
    assert "ELFCLASS32" in incompatibility(base, lib32)
    gnu = bytearray(a.read_bytes())
    gnu[7] = 3  # ELFOSABI_GNU (what glibc itself carries) is Linux too
    assert compatible(base, read_elf_bytes(bytes(gnu)))
    bsd = bytearray(a.read_bytes())
    bsd[7] = 9  # FreeBSD
    assert not compatible(base, read_elf_bytes(bytes(bsd)))


def test_not_elf_and_truncated(r: Root) -> None:
    assert read_elf_bytes(b"#!/bin/sh\n") is None
    assert read_elf_bytes(b"") is None
    broken = read_elf_bytes(b"\x7fELF")
    assert broken is not None and broken.elf_class == 0 and broken.error
    a = r.lib("l/liba.so.1", "liba.so.1", "a", "A").read_bytes()
    head_only = read_elf_bytes(a[:200])
    assert head_only is not None and head_only.elf_class == 64 and head_only.error


@pytest.fixture(scope="module")
def sample_lib(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    r = Root(tmp_path_factory.mktemp("s") / "root", tmp_path_factory.mktemp("w"))
    b = r.lib("l/libb.so.1", "libb.so.1", "b", "B")
    return r.lib("l/liba.so.1", "liba.so.1", "a", "A", deps=((b, "b"),), runpath="$ORIGIN").read_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_never_raise(sample_lib: bytes, data: st.DataObject) -> None:
    blob = bytearray(sample_lib)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, min(len(blob) - 1, 16384)))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    info = read_elf(io.BytesIO(bytes(blob[:cut])))
    assert info is None or isinstance(info, ElfInfo)


def _with_pyelftools_class(data: bytes, monkeypatch: pytest.MonkeyPatch) -> ElfInfo | None:
    """read_elf through pyelftools' own ELFFile (its struct definitions built for the file)."""
    from elftools.elf.elffile import ELFFile

    import bilge.elf as elf

    with monkeypatch.context() as m:
        m.setattr(elf, "_OPEN", ELFFile)
        return read_elf_bytes(data)


def _host_elf_files(limit: int = 120) -> list[Path]:
    found = []
    for d in ("/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"):
        for p in sorted(Path(d).glob("*"))[:400] if Path(d).is_dir() else []:
            try:
                if p.is_file() and not p.is_symlink() and p.open("rb").read(4) == b"\x7fELF":
                    found.append(p)
            except OSError:
                continue
            if len(found) >= limit:
                return found
    return found


def test_shared_struct_definitions_give_pyelftools_own_answers(r: Root, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_elf's ELFFile (struct definitions made once per kind of file) gives the same facts as
    pyelftools' own class, on the host's programs and libraries and on 32-bit, foreign and musl files."""
    import bilge.elf as elf

    assert elf._OPEN is elf._ELFFile  # the pyelftools the project pins has the internals it repeats
    files = [p.read_bytes() for p in _host_elf_files()]
    assert len(files) >= 20
    a = r.lib("l/liba.so.1", "liba.so.1", "a", "A")
    foreign = bytearray(a.read_bytes())
    foreign[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    files += [a.read_bytes(), bytes(foreign), r.lib("l/lib32.so.1", "lib32.so.1", "x", "X", m32=True).read_bytes()]
    for data in files:
        assert read_elf_bytes(data) == _with_pyelftools_class(data, monkeypatch)
    assert len(elf._STRUCTS) >= 2


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_shared_struct_definitions_on_damaged_files(sample_lib: bytes, monkeypatch: pytest.MonkeyPatch,
                                                    data: st.DataObject) -> None:
    """The same facts, or the same error, as pyelftools' own class on damaged files (header bytes
    changed: class, byte order, type, machine, OS/ABI, program header table; and cut short)."""
    blob = bytearray(sample_lib)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, 63))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    damaged = bytes(blob[:cut])
    assert read_elf_bytes(damaged) == _with_pyelftools_class(damaged, monkeypatch)
