"""bilge.deps.lazyelf: the bytes kept during the image pass give the same ELF facts as parsing the whole
file, on the host's real Debian binaries and libraries and on damaged copies; and only the files a
closure asks for are parsed."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from test_deps_roots import Root, have_gcc  # noqa: E402

from bilge.deps.lazyelf import (  # noqa: E402
    Capture,
    GrowingSpool,
    LazyElfTable,
    SparseReader,
    capture,
    capture_bytes,
)
from bilge.elf import ElfInfo, read_elf  # noqa: E402

HOST_DIRS = ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu")
LIMIT = 400  # files checked (every n-th of the sorted list, so the same ones each run)


def host_elf_files() -> list[Path]:
    found: list[Path] = []
    for d in HOST_DIRS:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            p = Path(d, name)
            if p.is_symlink() or not p.is_file():
                continue
            try:
                with open(p, "rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        found.append(p)
            except OSError:
                continue
    step = max(1, len(found) // LIMIT)
    return found[::step][:LIMIT]


def lazy(data: bytes) -> ElfInfo | None:
    got = capture(io.BytesIO(data), len(data))
    return got.info() if isinstance(got, Capture) else got


class Forward(io.RawIOBase):
    """A body that can only be read forward (a layer stream past its cached head)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data, self.pos = data, 0

    def readable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        assert whence == 0 and pos >= self.pos, "read backwards"
        self.pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        out = self.data[self.pos:] if n < 0 else self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


def test_host_binaries_and_libraries_give_the_same_facts() -> None:
    files = host_elf_files()
    if len(files) < 50:
        pytest.skip("fewer than 50 ELF files in the host's /usr")
    captured = kept = whole = 0
    for p in files:
        data = p.read_bytes()
        want = read_elf(io.BytesIO(data))
        got = capture(io.BytesIO(data), len(data))
        if isinstance(got, Capture):
            captured += 1
            kept += got.kept
            whole += len(data)
            got = got.info()
        assert got == want, p
    assert captured >= 0.95 * len(files)  # the rest were parsed at once (unusual layouts)
    assert kept < whole / 20  # what stays in memory is a small part of the files


def test_the_spool_copies_only_the_prefix_read() -> None:
    files = [p for p in host_elf_files() if p.stat().st_size > 1 << 20][:5]
    if not files:
        pytest.skip("no ELF file over 1 MiB in the host's /usr")
    for p in files:
        data = p.read_bytes()
        with GrowingSpool(Forward(data), len(data)) as spool:  # type: ignore[arg-type]
            got = capture(spool, len(data))  # type: ignore[arg-type]
            copied = spool._have
        assert (got.info() if isinstance(got, Capture) else got) == read_elf(io.BytesIO(data))
        assert copied < len(data), p


def test_a_read_outside_the_kept_bytes_is_refused() -> None:
    r = SparseReader(100, ((0, b"a" * 10), (50, b"b" * 10)))
    assert r.read(4) == b"aaaa" and r.seek(52) == 52 and r.read(8) == b"bbbbbbbb"
    r.seek(95)
    with pytest.raises(RuntimeError):
        r.read(3)
    r.seek(200)
    assert r.read(5) == b""


@pytest.fixture(scope="module")
def real_lib() -> bytes:
    for cand in ("/usr/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libacl.so.1",
                 "/usr/lib/x86_64-linux-gnu/libc.so.6"):
        if os.path.isfile(cand):
            return Path(cand).read_bytes()
    pytest.skip("no host library to damage")
    raise AssertionError


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_give_the_same_facts(real_lib: bytes, data: st.DataObject) -> None:
    blob = bytearray(real_lib)
    for _ in range(data.draw(st.integers(1, 8))):
        # header and program headers most of the time (class, byte order, e_phnum, e_phentsize, offsets)
        top = data.draw(st.sampled_from([64, 64 + 56 * 12, min(len(blob), 16384), len(blob)]))
        pos = data.draw(st.integers(0, top - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    damaged = bytes(blob[:cut])
    if damaged[:4] != b"\x7fELF":
        return
    assert lazy(damaged) == read_elf(io.BytesIO(damaged))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_body_matches_a_capture_exactly_when_it_would_capture_the_same(real_lib: bytes, data: st.DataObject) -> None:
    cap = capture_bytes(real_lib)
    assert isinstance(cap, Capture) and cap.matches(real_lib)
    blob = bytearray(real_lib)
    if data.draw(st.booleans()):  # a byte the capture kept
        off, kept = data.draw(st.sampled_from(cap.ranges))
        pos = off + data.draw(st.integers(0, len(kept) - 1))
    else:  # anywhere
        pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] = (blob[pos] + data.draw(st.integers(1, 255))) % 256
    other = bytes(blob)
    inside = any(off <= pos < off + len(kept) for off, kept in cap.ranges)
    assert cap.matches(other) is not inside
    if not inside:  # what the capture of the changed body keeps, and the facts, are the same
        again = capture_bytes(other)
        assert isinstance(again, Capture) and again.ranges == cap.ranges
        assert read_elf(io.BytesIO(other)) == cap.info()
    assert not cap.matches(real_lib + b"\0") and not cap.matches(real_lib[:-1])


def _p_and_libfoo(tmp_path: Path):
    """A glibc root with /usr/bin/p needing libfoo.so.1 (a symlink to libfoo.so.1.0); and its libdir."""
    from test_deps_image import LIBDIR

    r = Root(tmp_path / "root", tmp_path / "work").glibc()
    foo = r.lib(f"{LIBDIR}/libfoo.so.1.0", "libfoo.so.1", "foo", "FOO-1")
    r.symlink(f"{LIBDIR}/libfoo.so.1", "libfoo.so.1.0")
    r.prog("usr/bin/p", ((foo, "foo"),))
    return r, LIBDIR


@pytest.mark.skipif(not have_gcc(), reason="needs gcc and the host's glibc")
def test_copies_of_a_body_share_its_capture(tmp_path: Path) -> None:
    from test_deps_image import image_closure, items_of, write_image

    from bilge.deps import DirView, closure, image_view
    from bilge.source import open_image

    r, libdir = _p_and_libfoo(tmp_path)
    body = (r.path / libdir.lstrip("/") / "libfoo.so.1.0").read_bytes()
    renamed = body.replace(b"libfoo.so.1\0", b"libfoo.so.2\0")  # in the string table: kept bytes
    assert renamed != body
    copies = [("dir", "opt"), ("file", "opt/same.so", body, 0o755), ("file", "opt/renamed.so", renamed, 0o755)]
    ref = write_image(tmp_path / "img.tar", [items_of(r.path), copies])
    with open_image(ref) as src:
        _, collector = image_view(src)
    kept = collector.elf._items  # before anything is parsed
    original = kept[(0, f"{libdir.lstrip('/')}/libfoo.so.1.0")]
    assert isinstance(original, Capture)
    assert kept[(1, "opt/same.so")] is original and kept[(1, "opt/renamed.so")] is not original
    res, collector = image_closure(ref, binaries=["/usr/bin/p"])
    assert res == closure(DirView(r.path), binaries=["/usr/bin/p"])
    assert collector.elf[(1, "opt/same.so")] == read_elf(io.BytesIO(body))
    renamed_info = collector.elf[(1, "opt/renamed.so")]
    assert renamed_info == read_elf(io.BytesIO(renamed)) and renamed_info.soname == "libfoo.so.2"


def test_the_table_parses_a_file_once_when_asked() -> None:
    table = LazyElfTable()
    data = Path(sys.executable).resolve().read_bytes()
    got = capture(io.BytesIO(data), len(data))
    table[(0, "usr/bin/python3")] = got
    assert len(table) == 1 and table.parsed == 0 and list(table) == [(0, "usr/bin/python3")]
    first = table[(0, "usr/bin/python3")]
    assert first == read_elf(io.BytesIO(data)) and table.parsed == (1 if isinstance(got, Capture) else 0)
    assert table.get((0, "usr/bin/python3")) is first and table.get((1, "nope")) is None


@pytest.mark.skipif(not have_gcc(), reason="needs gcc and the host's glibc")
def test_only_the_closure_is_parsed(tmp_path: Path) -> None:
    from test_deps_image import image_closure, items_of, write_image

    from bilge.deps import DirView, closure

    r, libdir = _p_and_libfoo(tmp_path)
    for i in range(4):  # libraries and programs no closure here needs
        other = r.lib(f"{libdir}/libother{i}.so.1", f"libother{i}.so.1", f"o{i}", f"O{i}")
        r.prog(f"usr/bin/other{i}", ((other, f"o{i}"),))
    ref = write_image(tmp_path / "img.tar", [items_of(r.path)])
    res, collector = image_closure(ref, binaries=["/usr/bin/p"])
    want = closure(DirView(r.path), binaries=["/usr/bin/p"])
    assert res == want  # every fact, as reading the unpacked directory gives
    assert collector.elf_files == 12  # ld.so, libc, libfoo, p, 4 libraries, 4 programs
    parsed = collector.elf.parsed
    assert parsed == 4, parsed  # ld.so, libc, libfoo and p: the closure, not the other eight


# -- layer entries: capture_entry ------------------------------------------------------------------


def _entries_of(tmp_path: Path, files: dict[str, bytes], pre: int = 64 << 10):
    """The entries of a one-layer image holding ``files``, each after a secrets-like read of its head
    (``pre`` bytes)."""
    from bilge.layers import iter_layer
    from bilge.source import open_image
    from bilge.testing import docker_archive

    ref = tmp_path / "img.tar"
    docker_archive(ref, [[("file", name, data, 0o755) for name, data in files.items()]], compression="gzip")
    with open_image(str(ref)) as src:
        for entry in iter_layer(src, src.image.layers[0]):
            if entry.type == "file":
                entry.head(pre)
                yield entry


def _separate_code(data: bytes) -> bool:
    """The first PT_LOAD of this (little-endian, 64-bit) file starts it and is not executable."""
    import struct

    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        p_type, p_flags, p_offset = struct.unpack_from("<IIQ", data, phoff + i * phentsize)
        if p_type == 1:
            return p_offset == 0 and not p_flags & 1
    return False


def large_host_files() -> list[Path]:
    """Up to 6 host ELF files of 1-8 MiB (past the size read whole), libraries first."""
    found = [p for p in host_elf_files() if (1 << 20) < p.stat().st_size <= (8 << 20)]
    return sorted(found, key=lambda p: "/lib/" not in str(p))[:6]


@pytest.mark.parametrize("pre", [64 << 10, 200 << 10], ids=["head-read", "more-read-before"])
def test_large_entries_are_read_forward_and_give_the_same_facts(tmp_path: Path, pre: int) -> None:
    """(An earlier visitor may have read more than the collector's head, past a short first segment.)"""
    from bilge.deps.lazyelf import capture_entry, entry_head

    files = {f"f{i}": p.read_bytes() for i, p in enumerate(large_host_files())}
    forward = [n for n, d in files.items() if d[4] == 2 and d[5] == 1 and _separate_code(d)]
    if not forward:
        pytest.skip("no separate-code ELF file over 1 MiB in the host's /usr")
    for entry in _entries_of(tmp_path, files, pre):
        data = files[entry.path]
        got = capture_entry(entry, entry_head(entry))
        if isinstance(got, Capture):
            assert got.kept < len(data) / 4, entry.path  # the first segment's few ranges, not the file
            got = got.info()
        assert got == read_elf(io.BytesIO(data)), entry.path
        if entry.path in forward:  # passed over, not cached: the body beyond its head is gone for others
            with pytest.raises(RuntimeError, match="streamed past"):
                entry.fileobj.read()
            assert entry.head(64) == data[:64]  # the cached head still is not


def test_other_layouts_are_read_through_the_cache(tmp_path: Path) -> None:
    import struct

    from bilge.deps.lazyelf import capture_entry, entry_head

    files = {}
    for i, p in enumerate(large_host_files()):
        data = bytearray(p.read_bytes())
        if data[4] == 2 and data[5] == 1 and _separate_code(bytes(data)):
            phoff, = struct.unpack_from("<Q", data, 32)
            phentsize, phnum = struct.unpack_from("<HH", data, 54)
            for k in range(phnum):  # the first PT_LOAD made executable: one code segment from the start
                at = phoff + k * phentsize
                if struct.unpack_from("<I", data, at)[0] == 1:
                    data[at + 4] |= 1
                    break
            files[f"f{i}"] = bytes(data)
    if not files:
        pytest.skip("no separate-code ELF file over 1 MiB in the host's /usr")
    for entry in _entries_of(tmp_path, files):
        got = capture_entry(entry, entry_head(entry))
        assert (got.info() if isinstance(got, Capture) else got) == read_elf(io.BytesIO(files[entry.path]))
        assert entry.fileobj.read() == files[entry.path]  # nothing passed over: every reader still reads it all


def test_a_string_table_in_the_bytes_passed_over_is_reported(tmp_path: Path) -> None:
    """No linker writes this; a hand-edited DT_STRTAB pointing into the code gets an error, not wrong names."""
    import struct

    from bilge.deps.lazyelf import capture_entry, entry_head

    for p in large_host_files():
        data = bytearray(p.read_bytes())
        if not (data[4] == 2 and data[5] == 1 and _separate_code(bytes(data))):
            continue
        phoff, = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        segs = [struct.unpack_from("<IIQQQQ", data, phoff + k * phentsize) for k in range(phnum)]
        loads = [s for s in segs if s[0] == 1]
        dyn = next((s for s in segs if s[0] == 2), None)
        if dyn is None or len(loads) < 2:
            continue
        code = loads[1]  # (type, flags, offset, vaddr, paddr, filesz)
        for off in range(dyn[2], dyn[2] + dyn[5], 16):
            tag, = struct.unpack_from("<q", data, off)
            if tag == 5:  # DT_STRTAB: now the address of the second segment
                struct.pack_into("<Q", data, off + 8, code[3])
                break
        for entry in _entries_of(tmp_path, {"lib": bytes(data)}):  # (read while the layer is at the entry)
            got = capture_entry(entry, entry_head(entry))
            info = got.info() if isinstance(got, Capture) else got
            assert info is not None and "not kept during the one pass" in (info.error or ""), info
            assert info.needed == () and info.elf_class == 64  # the header's facts stay; no invented names
        return
    pytest.skip("no separate-code ELF file over 1 MiB with a dynamic section in the host's /usr")


def test_a_body_streamed_past_by_an_earlier_visitor_gives_an_error_not_an_exception(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """A visitor that read a body over FULL_CACHE_LIMIT whole (a binary scan) leaves only its head: the
    capture says what it could not read instead of raising."""
    import bilge.body
    from bilge.deps.lazyelf import capture_entry

    files = {f"f{i}": p.read_bytes() for i, p in enumerate(large_host_files()[:2])}
    if not files:
        pytest.skip("no ELF file over 1 MiB in the host's /usr")
    monkeypatch.setattr(bilge.body, "FULL_CACHE_LIMIT", 1 << 20)
    monkeypatch.setattr(bilge.body, "HEAD_CACHE", 512)  # less than the program headers of any of them
    for entry in _entries_of(tmp_path, files):
        fh = entry.fileobj
        while fh.read(1 << 16):  # streamed to the end, as a binary scan does
            pass
        got = capture_entry(entry, entry.head(512))
        info = got.info() if isinstance(got, Capture) else got
        assert info is not None and info.error, entry.path
