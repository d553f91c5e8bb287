"""ImageView: the resolver over an image's merged filesystem (layers, whiteouts, hardlinks), and the CLI.

Images are written in code (bilge.testing) from roots compiled with gcc (test_deps_roots.py); the
expected answers come from the same roots as plain directories and from the real loader in a chroot.
"""

from __future__ import annotations

import io
import json
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_deps_roots import Root, can_chroot, have_gcc  # noqa: E402

from bilge.deps import DirView, closure, image_view  # noqa: E402
from bilge.source import open_image  # noqa: E402
from bilge.testing import config_for, docker_archive, layer_tar  # noqa: E402

pytestmark = pytest.mark.skipif(not have_gcc(), reason="needs gcc and the host's glibc")
LIBDIR = "/usr/lib/x86_64-linux-gnu"


def items_of(root: Path, only: set[str] | None = None) -> list[tuple]:
    """Layer items for every entry under ``root`` (or only the given relative paths and their parents)."""
    out: list[tuple] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if only is not None and not any(o == rel or o.startswith(rel + "/") for o in only):
                continue
            if full.is_symlink():
                out.append(("symlink", rel, os.readlink(full)))
            elif full.is_dir():
                out.append(("dir", rel))
            else:
                out.append(("file", rel, full.read_bytes(), full.stat().st_mode & 0o777))
    return out


def write_image(path: Path, layers: list[list[tuple]], config: dict | None = None) -> str:
    tars = [layer_tar(items) for items in layers]
    cfg = config_for(tars, extra=None)
    if config:
        cfg["config"].update(config)
    docker_archive(path, layers, config=cfg)
    return str(path)


def image_closure(ref: str, **kw):
    with open_image(ref) as src:
        view, collector = image_view(src)
        return closure(view, config=src.image.container_config, **kw), collector


def cli(*args: str) -> tuple[int, str, str]:
    from bilge.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def base(tmp_path: Path) -> Root:
    r = Root(tmp_path / "root", tmp_path / "work").glibc()
    foo = r.lib(f"{LIBDIR}/libfoo.so.1.0", "libfoo.so.1", "foo", "FOO-1")
    r.symlink(f"{LIBDIR}/libfoo.so.1", "libfoo.so.1.0")
    r.prog("usr/bin/p", ((foo, "foo"),))
    return r


def test_image_view_matches_the_directory(base: Root, tmp_path: Path) -> None:
    ref = write_image(tmp_path / "img.tar", [items_of(base.path)])
    res, collector = image_closure(ref, binaries=["/usr/bin/p"])
    want = closure(DirView(base.path), binaries=["/usr/bin/p"])
    assert [(f.path, f.kind, f.size, f.role, f.target) for f in res.files] == \
           [(f.path, f.kind, f.size, f.role, f.target) for f in want.files]
    assert collector.elf_files == 4  # ld.so, libc, libfoo, p
    assert not res.missing


def test_later_layers_replace_and_delete_libraries(base: Root, tmp_path: Path) -> None:
    """The visible version decides: a replaced library brings its own needs, a deleted one is missing."""
    layer0 = items_of(base.path)
    extra = base.lib(f"{LIBDIR}/libextra.so.1", "libextra.so.1", "extra", "EXTRA")
    base.lib(f"{LIBDIR}/libfoo.so.1.0", "libfoo.so.1", "foo", "FOO-2", deps=((extra, "extra"),))
    layer1 = items_of(base.path, {f"{LIBDIR.lstrip('/')}/libfoo.so.1.0", f"{LIBDIR.lstrip('/')}/libextra.so.1"})
    ref1 = write_image(tmp_path / "img1.tar", [layer0, layer1])
    res1, _ = image_closure(ref1, binaries=["/usr/bin/p"])
    assert f"{LIBDIR}/libextra.so.1" in {f.path for f in res1.files}
    assert not res1.missing
    if can_chroot():  # the directory now holds the same two layers merged: the real loader agrees
        assert base.run("/usr/bin/p").stdout.strip() == "FOO-2+EXTRA"

    ref2 = write_image(tmp_path / "img2.tar", [layer0, layer1, [("whiteout", f"{LIBDIR.lstrip('/')}/libextra.so.1")]])
    res2, _ = image_closure(ref2, binaries=["/usr/bin/p"])
    assert [(m.soname, m.needed_by) for m in res2.missing] == [("libextra.so.1", (f"{LIBDIR}/libfoo.so.1.0",))]
    code, _out, _err = cli("deps", ref2, "--binary", "/usr/bin/p")
    assert code == 1


def test_hardlinked_library_and_opaque_directory(base: Root, tmp_path: Path) -> None:
    hard = base.lib("opt/x/libhard.so.1", "libhard.so.1", "hard", "HARD")
    base.prog("usr/bin/h", ((hard, "hard"),), rpath="/opt/y")
    layer0 = items_of(base.path)
    layer1 = [("dir", "opt/y"), ("hardlink", "opt/y/libhard.so.1", "opt/x/libhard.so.1")]
    ref = write_image(tmp_path / "img.tar", [layer0, layer1])
    res, _ = image_closure(ref, binaries=["/usr/bin/h"])
    assert not res.missing
    assert "/opt/y/libhard.so.1" in {f.path for f in res.files if f.role == "needed"}
    ref2 = write_image(tmp_path / "img2.tar", [layer0, layer1, [("opaque", "opt/y"), ("file", "opt/y/README", b"x")]])
    res2, _ = image_closure(ref2, binaries=["/usr/bin/h"])
    assert [m.soname for m in res2.missing] == ["libhard.so.1"]


def test_cache_and_config_files_come_from_the_image(base: Root, tmp_path: Path) -> None:
    lib = base.lib("opt/conf/libconf.so.1", "libconf.so.1", "conf", "CONF")
    base.prog("usr/bin/c", ((lib, "conf"),))
    base.ld_so_conf("include /etc/ld.so.conf.d/*.conf\n", {"etc/ld.so.conf.d/app.conf": "/opt/conf\n"})
    base.ldconfig()
    ref = write_image(tmp_path / "img.tar", [items_of(base.path)])
    res, _ = image_closure(ref, binaries=["/usr/bin/c"])
    edges = {e.name: e.via for t in res.trees.values() for es in t.values() for e in es}
    assert edges["libconf.so.1"] == "ld.so.cache" and not res.notes


def test_entrypoint_env_and_workdir_from_the_config(base: Root, tmp_path: Path) -> None:
    lib = base.lib("opt/llp/libllp.so.1", "libllp.so.1", "llp", "LLP")
    base.prog("opt/app/run", ((lib, "llp"),))
    ref = write_image(tmp_path / "img.tar", [items_of(base.path)],
                      {"Entrypoint": ["./run"], "WorkingDir": "/opt/app",
                       "Env": ["PATH=/usr/bin", "LD_LIBRARY_PATH=/opt/llp"]})
    res, _ = image_closure(ref, entrypoint=True)
    assert [r.canonical for r in res.roots] == ["/opt/app/run"]
    assert "/opt/llp/libllp.so.1" in {f.path for f in res.files}


@pytest.mark.parametrize("forward_head", [256, 4096], ids=["cached-and-spooled", "read-forward"])
def test_big_elf_bodies_are_spooled(base: Root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    forward_head: int) -> None:
    import bilge.body
    import bilge.deps.lazyelf

    monkeypatch.setattr(bilge.body, "FULL_CACHE_LIMIT", 4096)
    monkeypatch.setattr(bilge.body, "HEAD_CACHE", 1024)
    monkeypatch.setattr(bilge.body, "WHOLE_BODY", 1024)
    # a head too short for the program headers: read through the cache (and spooled past 4096 bytes)
    monkeypatch.setattr(bilge.deps.lazyelf, "FORWARD_HEAD", forward_head)
    ref = write_image(tmp_path / "img.tar", [items_of(base.path)])
    res, collector = image_closure(ref, binaries=["/usr/bin/p"])
    assert not res.missing and collector.elf_files == 4
    assert {f.path for f in res.files if f.kind == "file"} >= {f"{LIBDIR}/libc.so.6", f"{LIBDIR}/libfoo.so.1.0"}


# -- CLI ---------------------------------------------------------------------------------------------


def test_cli_json_list_and_exit_codes(base: Root, tmp_path: Path) -> None:
    ref = write_image(tmp_path / "img.tar", [items_of(base.path)])
    code, out, _ = cli("deps", ref, "--binary", "/usr/bin/p", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "bilge.deps/1"
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path[f"{LIBDIR}/libfoo.so.1"] == {"path": f"{LIBDIR}/libfoo.so.1", "kind": "symlink", "size": 0,
                                               "needed_by": ["/usr/bin/p"], "role": "needed",
                                               "target": "libfoo.so.1.0"}
    assert by_path[f"{LIBDIR}/libfoo.so.1.0"]["size"] == base.p(f"{LIBDIR}/libfoo.so.1.0").stat().st_size
    assert doc["total_bytes"] == sum(f["size"] for f in doc["files"] if f["kind"] == "file")
    assert doc["missing"] == [] and doc["roots"][0]["path"] == "/usr/bin/p"

    code, out, _ = cli("deps", ref, "--binary", "/usr/bin/p", "--format", "list")
    assert code == 0 and out.splitlines() == sorted(by_path)

    code, out, _ = cli("deps", ref, "--binary", "/usr/bin/p")
    assert code == 0 and "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 -> /usr/lib/x86_64-linux-gnu/libfoo.so.1.0" in out
    assert "copying /usr/lib:" in out

    for args, msg in ((("--binary", "/nope"), "not found in the image"),
                      (("--binary", "/usr/bin/p", "--format", "dockerfile"), "--from"),
                      ((), "nothing to resolve")):
        code, out, err = cli("deps", ref, *args)
        assert code == 2 and err.startswith("bilge: error:") and msg in err and "Traceback" not in err


def test_cli_rootfs(base: Root) -> None:
    code, out, _ = cli("deps", "--rootfs", str(base.path), "-b", "/usr/bin/p", "--format", "list", "--strict")
    assert code == 0
    assert set(out.split()) == {"/lib", "/lib64", "/usr/bin/p", f"{LIBDIR}/libc.so.6", f"{LIBDIR}/libfoo.so.1",
                                f"{LIBDIR}/libfoo.so.1.0", f"{LIBDIR}/ld-linux-x86-64.so.2",
                                "/usr/lib64/ld-linux-x86-64.so.2"}


def test_dockerfile_lines_keep_links(base: Root, tmp_path: Path) -> None:
    from bilge.format.deps import LinkMode, to_dockerfile

    res = closure(DirView(base.path), binaries=["/usr/bin/p"], strict=True)
    stage = to_dockerfile(res, "builder", LinkMode.stage)
    assert "FROM builder AS builder-deps" in stage and stage[-1] == "COPY --from=builder-deps /.bilge-deps/ /"
    tarred = [ln.strip().rstrip(" \\") for ln in stage if ln.startswith("      ")]
    assert sorted(tarred) == sorted(f.path.lstrip("/") for f in res.files)
    run = to_dockerfile(res, "builder", LinkMode.run)
    assert f"COPY --from=builder {LIBDIR}/ld-linux-x86-64.so.2 {LIBDIR}/libc.so.6 {LIBDIR}/libfoo.so.1.0 {LIBDIR}/" in run
    ln_line = next(ln for ln in run if ln.startswith("RUN "))
    assert f"l libfoo.so.1.0 {LIBDIR}/libfoo.so.1" in ln_line and "l usr/lib /lib" in ln_line


def test_library_written_through_a_symlinked_directory(base: Root, tmp_path: Path) -> None:
    """A later layer writes lib/x86_64-linux-gnu/libnew.so.1 while /lib is a symlink to usr/lib."""
    new = base.lib("tmp-build/libnew.so.1", "libnew.so.1", "new", "NEW")
    base.prog("usr/bin/n", ((new, "new"),))
    data = new.read_bytes()
    new.unlink()
    layer0 = items_of(base.path)
    layer1 = [("file", "lib/x86_64-linux-gnu/libnew.so.1", data, 0o755)]
    ref = write_image(tmp_path / "img.tar", [layer0, layer1])
    res, _ = image_closure(ref, binaries=["/usr/bin/n"])
    assert not res.missing
    assert f"{LIBDIR}/libnew.so.1" in {f.path for f in res.files if f.role == "needed"}


def test_scripts_and_entrypoints_the_image_cannot_run_are_findings(base: Root, tmp_path: Path) -> None:
    base.write("usr/local/bin/tool", "#!/usr/bin/python3\nprint(1)\n", 0o755)
    base.write("usr/local/bin/envtool", "#!/usr/bin/env node\n", 0o755)
    ref = write_image(tmp_path / "img.tar", [items_of(base.path)], {"Entrypoint": ["nosuchprogram"]})
    res, _ = image_closure(ref, binaries=["/usr/local/bin/tool"])
    assert [(m.soname, m.needed_by) for m in res.missing] == [("/usr/bin/python3", ("/usr/local/bin/tool",))]
    code, _out, _err = cli("deps", ref, "--binary", "/usr/local/bin/envtool")
    assert code == 1  # /usr/bin/env itself is missing in this image, and so is node
    res, _ = image_closure(ref, entrypoint=True)
    assert [(m.soname, m.needed_by) for m in res.missing] == [("nosuchprogram", ("Entrypoint/Cmd",))]


def test_dockerfile_helper_stage_name_is_valid(base: Root) -> None:
    from bilge.format.deps import LinkMode, to_dockerfile

    res = closure(DirView(base.path), binaries=["/usr/bin/p"], strict=True)
    lines = to_dockerfile(res, "Ruby:3.1 Builder", LinkMode.stage)
    assert "FROM Ruby:3.1 Builder AS ruby-3.1-builder-deps" in lines


def test_text_library_table_for_many_roots(base: Root) -> None:
    from bilge.format.common import console
    from bilge.format.deps import render_text

    res = closure(DirView(base.path), paths=["/usr"], strict=True)
    buf = io.StringIO()
    render_text(console(buf), res, tree_limit=0)
    text = buf.getvalue()
    assert "4 roots (3 dynamic ELF, 1 static, 0 scripts)" in text  # p, libfoo, libc; ld.so needs nothing
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{LIBDIR}/libc.so.6"))
    assert line.rstrip().endswith("needed by 2")  # p and libfoo
