"""Hostile ELF files and loader configuration for ``deps`` (issue 16: 7, 8, 10, 18)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile

import pytest

from bilge.testing import docker_archive
from tests.hostile.elfs import elf
from tests.hostile.harness import assert_bounded, assert_clean_error, run_bilge

LOADER = elf([])  # stands in for the loader: an ELF that needs nothing


def _image(tmp_path, files, compression=None):
    image = tmp_path / "img.tar"
    items = [("file", "lib64/ld-linux-x86-64.so.2", LOADER), ("file", "lib/libc.so.6", elf([])), *files]
    docker_archive(image, [items], compression=compression)
    return f"docker-archive:{image}"


def _deps(tmp_path, ref, binary="/app"):
    return run_bilge(["deps", "--format", "json", ref, "--binary", binary], tmp_path, timeout=90)


def test_needed_with_thousands_of_components(tmp_path):
    ref = _image(tmp_path, [("file", "app", elf(["/".join(["a"] * 1500) + "/libc.so.6"]))])
    o = _deps(tmp_path, ref)
    assert o.code == 1 and "Traceback" not in o.stderr, o.describe()  # reported missing, not a crash
    assert_bounded(o, max_seconds=30)


def test_rpath_of_dot_components(tmp_path):
    ref = _image(tmp_path, [("file", "app", elf(["libc.so.6"], "/" + "./" * 1900 + "lib"))])
    o = _deps(tmp_path, ref)
    assert o.code == 0 and "/lib/libc.so.6" in o.stdout, o.describe()
    assert_bounded(o, max_seconds=30)


def test_include_chain(tmp_path):
    n = 1500
    confs = [("file", "etc/ld.so.conf", b"include /etc/ld.so.conf.d/c0.conf\n")]
    confs += [("file", f"etc/ld.so.conf.d/c{i}.conf", f"include /etc/ld.so.conf.d/c{i + 1}.conf\n".encode())
              for i in range(n)]
    confs += [("file", f"etc/ld.so.conf.d/c{n}.conf", b"/opt/deep\n"), ("file", "opt/deep/libz.so.1", elf([]))]
    ref = _image(tmp_path, [*confs, ("file", "app", elf(["libz.so.1", "libc.so.6"]))])
    o = _deps(tmp_path, ref)
    assert o.code == 0 and "/opt/deep/libz.so.1" in o.stdout, o.describe()  # the last include was read
    assert_bounded(o, max_seconds=40)


@pytest.mark.parametrize("cache", [
    b"glibc-ld.so.cache1.1" + struct.pack("<IIIIIIII", 0xFFFFFF, 10, 0, 0, 0, 0, 0, 0),
    b"ld.so-1.7.0\0" + struct.pack("<I", 0xFFFFFFF) + b"\0" * 8,
    b"glibc-ld.so.cache1.1" + struct.pack("<IIIIIIII", 0, 10, 0, 52, 0, 0, 0, 0) + struct.pack("<II", 0xEAA42174, 99999),
], ids=["new-format-count", "old-format-count", "extension-count"])
def test_malformed_ld_so_cache(tmp_path, cache):
    ref = _image(tmp_path, [("file", "etc/ld.so.cache", cache), ("file", "app", elf(["libc.so.6"]))])
    o = _deps(tmp_path, ref)
    assert o.code == 0 and "Traceback" not in o.stderr, o.describe()
    assert "ld.so.cache" in o.stdout  # the note says the cache was ignored
    assert_bounded(o)


@pytest.mark.parametrize("app", [
    elf(["libc.so.6"], needed_index=99999),
    elf(["libc.so.6"], strtab_vaddr=1 << 40),
    elf(["libc.so.6"], phoff=1 << 20),
], ids=["needed-past-dynstr", "strtab-out-of-range", "phdrs-past-end"])
def test_unreadable_dynamic_section_is_not_static(tmp_path, app):
    ref = _image(tmp_path, [("file", "app", app)])
    o = _deps(tmp_path, ref)
    assert_clean_error(o, contains="cannot be resolved")
    o = run_bilge(["deps", "--format", "json", ref, "--path", "/"], tmp_path)
    assert o.code == 1 and '"/app"' in o.stdout and "cannot be resolved" in o.stdout, o.describe()


def test_unreadable_library_is_not_taken_as_needing_nothing(tmp_path):
    ref = _image(tmp_path, [("file", "usr/lib/libx.so.1", elf(["libc.so.6"], needed_index=99999)),
                            ("file", "app", elf(["/usr/lib/libx.so.1", "libc.so.6"]))])
    o = _deps(tmp_path, ref)
    assert o.code in (1, 2) and "Traceback" not in o.stderr, o.describe()
    assert "dynamic section" in o.stdout + o.stderr


class _Hashing(io.RawIOBase):
    """A write-only stream that gzips what it is given and hashes it uncompressed (nothing kept whole)."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.out = io.BytesIO()
        self.gz = gzip.GzipFile(fileobj=self.out, mode="wb", compresslevel=1, mtime=0)

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.sha.update(b)
        self.gz.write(b)
        return len(b)


def test_many_etc_files_do_not_stay_in_memory(tmp_path):
    """400 files of 1 MiB under /etc: the run's memory does not grow with them (before: 1 MiB each).

    The layer is streamed through gzip here, so the test process stays small (a child's peak RSS
    starts from its parent's at fork)."""
    sink = _Hashing()
    with tarfile.open(fileobj=sink, mode="w|") as tf:
        for name, data in (("lib64/ld-linux-x86-64.so.2", LOADER), ("lib/libc.so.6", elf([])),
                           ("app", elf(["libc.so.6"]))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        blob = b"\0" * (1 << 20)
        for i in range(400):
            info = tarfile.TarInfo(f"etc/junk/f{i}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    sink.gz.close()
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sink.sha.hexdigest()]}}).encode()
    image = tmp_path / "img.tar"
    with tarfile.open(image, "w") as tf:
        for name, data in (("l/layer.tar", sink.out.getvalue()), ("c.json", cfg), ("manifest.json", json.dumps(
                [{"Config": "c.json", "RepoTags": ["t:1"], "Layers": ["l/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    del sink, blob
    o = _deps(tmp_path, f"docker-archive:{image}")
    assert o.code == 0 and '"/lib/libc.so.6"' in o.stdout, o.describe()
    assert_bounded(o, max_seconds=60, max_rss=200 << 20)
