"""The loader's configuration files, read by bilge and by glibc's own tools (ldconfig -p, ld.so --help)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import argv, which

sys.path.insert(0, str(Path(__file__).parent))
from test_deps_roots import HOST_LOADER, Root, have_gcc  # noqa: E402

from bilge.deps import (  # noqa: E402
    DirView,
    Tree,
    loader_search_info,
    parse_ld_so_cache,
    parse_ld_so_conf,
    parse_nsswitch,
)

needs_ldconfig = pytest.mark.skipif(which("ldconfig") is None, reason="needs glibc's ldconfig")


def ldconfig_p(cache: Path) -> list[tuple[str, str, str | None]]:
    """(key, path, hwcap subdirectory) per entry, as glibc's ldconfig prints them."""
    out = subprocess.run([*argv("ldconfig"), "-p", "-C", str(cache)], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        m = re.match(r'\s*(\S+) \(([^)]*)\) => (\S+)', line)
        if m:
            hw = re.search(r'hwcap: "([^"]+)"', m.group(2))
            rows.append((m.group(1), m.group(3), hw.group(1) if hw else None))
    return rows


@needs_ldconfig
def test_host_cache_matches_ldconfig_p() -> None:
    cache = Path("/etc/ld.so.cache")
    if not cache.is_file():
        pytest.skip("no /etc/ld.so.cache on this host")
    entries = parse_ld_so_cache(cache.read_bytes())
    assert entries is not None
    assert [(e.key, e.path, e.hwcap) for e in entries] == ldconfig_p(cache)


@needs_ldconfig
@pytest.mark.parametrize("fmt", ["old", "compat", "new"])
def test_cache_formats(tmp_path: Path, fmt: str) -> None:
    cache = tmp_path / f"{fmt}.cache"
    proc = subprocess.run([*argv("ldconfig"), "-c", fmt, "-C", str(cache), "-f", "/etc/ld.so.conf"], capture_output=True)
    if proc.returncode != 0 or not cache.exists():
        pytest.skip(f"this ldconfig cannot write the {fmt} format")
    entries = parse_ld_so_cache(cache.read_bytes())
    assert entries is not None and len(entries) > 10
    assert {(e.key, e.path) for e in entries} == {(k, p) for k, p, _ in ldconfig_p(cache)}


@needs_ldconfig
@pytest.mark.skipif(not have_gcc(), reason="needs gcc")
def test_cache_hwcaps_entries(tmp_path: Path) -> None:
    r = Root(tmp_path / "root", tmp_path / "work").glibc()
    r.lib("usr/lib/x86_64-linux-gnu/libh.so.1", "libh.so.1", "h", "H")
    r.lib("usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libh.so.1", "libh.so.1", "h", "H3")
    r.ldconfig()
    entries = parse_ld_so_cache(r.p("etc/ld.so.cache").read_bytes())
    assert entries is not None
    mine = {(e.key, e.path, e.hwcap) for e in entries if e.key == "libh.so.1"}
    assert mine == {k for k in ldconfig_p(r.p("etc/ld.so.cache")) if k[0] == "libh.so.1"}
    assert ("libh.so.1", "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libh.so.1", "x86-64-v3") in mine


def test_cache_garbage_is_rejected() -> None:
    assert parse_ld_so_cache(b"") is None
    assert parse_ld_so_cache(b"not a cache at all") is None
    assert parse_ld_so_cache(b"glibc-ld.so.cache1.1" + b"\xff" * 8) is None


@pytest.mark.skipif(not HOST_LOADER.is_file(), reason="needs the host's glibc loader")
def test_loader_search_path_matches_ld_so_help() -> None:
    help_text = subprocess.run([str(HOST_LOADER), "--help"], capture_output=True, text=True).stdout
    want = re.findall(r"^\s+(/\S*) \(system search path\)", help_text, re.M)
    dirs, lib = loader_search_info(HOST_LOADER.read_bytes())
    assert dirs == want
    assert lib and dirs and dirs[0].endswith(lib)


def test_ld_so_conf_includes(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/more").mkdir()
    (root / "etc/ld.so.conf").write_text(
        "# top\n/opt/first/  # trailing comment\ninclude ld.so.conf.d/*.conf /etc/more/x.conf\n"
        "hwcap 1 nosegneg\n/opt/first\n/opt/typed=libc6\n")
    (root / "etc/ld.so.conf.d/b.conf").write_text("/opt/b\n")
    (root / "etc/ld.so.conf.d/a.conf").write_text("/opt/a\ninclude /etc/ld.so.conf\n")  # a loop
    (root / "etc/ld.so.conf.d/.hidden.conf").write_text("/opt/hidden\n")
    (root / "etc/ld.so.conf.d/c.txt").write_text("/opt/c\n")
    (root / "etc/more/x.conf").write_text("/opt/x\n")
    assert parse_ld_so_conf(Tree(DirView(root))) == ["/opt/first", "/opt/a", "/opt/b", "/opt/x", "/opt/typed"]
    assert parse_ld_so_conf(Tree(DirView(tmp_path))) == []


def test_nsswitch() -> None:
    text = b"passwd: files systemd\n#hosts: nis\nhosts: files mdns4_minimal [NOTFOUND=return] dns\n\nbad line\n"
    assert parse_nsswitch(text) == [("passwd", "files"), ("passwd", "systemd"), ("hosts", "files"),
                                    ("hosts", "mdns4_minimal"), ("hosts", "dns")]
    assert ("hosts", "dns") in parse_nsswitch(None)


def test_tree_resolution_is_confined_and_kernel_like(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "usr/lib/x").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "usr/lib/x/f").write_text("f")
    (root / "lib").symlink_to("usr/lib")
    (root / "abs").symlink_to("/usr/lib/x/f")
    (root / "up").symlink_to("../../../../../../real")
    (root / "real/dotdot").symlink_to("/lib/x/..")  # ".." after a symlink is taken from its target
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    t = Tree(DirView(root))
    r = t.resolve("/lib/x/f")
    assert (r.path, r.kind, r.links) == ("/usr/lib/x/f", "file", ("/lib",))
    assert t.resolve("/abs").path == "/usr/lib/x/f"
    assert (t.resolve("/up").path, t.resolve("/up").kind) == ("/real", "dir")
    assert t.resolve("/real/dotdot").path == "/usr/lib"
    assert t.resolve("/loop1").kind == "loop"
    assert t.resolve("/usr/lib/x/f/g").kind == "missing"
    assert t.resolve("x/f", cwd="/lib").path == "/usr/lib/x/f"
    assert t.glob("/lib/*/f") == ["/lib/x/f"]
