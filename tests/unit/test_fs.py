"""The merged filesystem: every whiteout and replacement case of the OCI image spec, built in code."""

from __future__ import annotations

import pytest

from bilge.analyze import analyze
from bilge.fs import walk_image
from bilge.source import open_image
from bilge.testing import docker_archive


def build(tmp_path, layers, **kw):
    path = tmp_path / "img.tar"
    docker_archive(path, layers, **kw)
    src = open_image(f"docker-archive:{path}")
    fs = walk_image(src)
    return src, fs


def visible(fs):
    return {p: v.kind for p, v in fs.visible()}


def test_whiteout_deletes_file_and_keeps_provenance(tmp_path):
    src, fs = build(tmp_path, [[("file", "a/x", b"12345"), ("file", "a/y", b"1")], [("whiteout", "a/x")]])
    assert visible(fs) == {"a": "dir", "a/y": "file"}
    old = fs.version_at("a/x", 0)
    assert (old.hidden_by, old.hidden_how) == (1, "deleted")
    result = analyze(src.image, fs)
    assert (result.summary.layer_bytes, result.summary.visible_bytes, result.summary.reclaimable_bytes) == (6, 1, 5)
    [group] = result.wasted
    assert (group.path, group.layer, group.hidden_by_layer, group.bytes) == ("/a/x", 0, 1, 5)


def test_whiteout_of_directory_hides_whole_subtree_only_from_lower_layers(tmp_path):
    src, fs = build(tmp_path, [
        [("file", "d/sub/f1", b"aaaa"), ("file", "d/f2", b"bb")],
        [("whiteout", "d"), ("file", "d/new", b"c")],  # same layer re-creates d/new: it survives
    ])
    assert visible(fs) == {"d": "dir", "d/new": "file"}
    assert fs.version_at("d/sub/f1", 0).hidden_root == "d"
    wo = [w for w in fs.whiteouts if w.path == "d"][0]
    assert (wo.hidden_files, wo.hidden_bytes, wo.prev_kind) == (2, 6, "dir")
    result = analyze(src.image, fs)
    assert result.summary.reclaimable_bytes == 6
    assert result.wasted[0].path == "/d/" and result.wasted[0].files == 2


def test_opaque_directory_hides_lower_children_but_keeps_its_own(tmp_path):
    _src, fs = build(tmp_path, [
        [("file", "app/old1", b"1"), ("file", "app/sub/old2", b"2"), ("file", "other", b"3")],
        [("opaque", "app"), ("file", "app/new", b"4")],
    ])
    assert visible(fs) == {"app": "dir", "app/new": "file", "other": "file"}
    assert fs.version_at("app/sub/old2", 0).hidden_how == "opaque"


def test_whiteout_order_inside_a_layer_does_not_matter(tmp_path):
    # entry before its whiteout in the same tar: the whiteout only applies to lower layers
    _src, fs = build(tmp_path, [[("file", "f", b"old")], [("file", "f", b"new!"), ("whiteout", "f")]])
    assert fs.lookup("f").size == 4


@pytest.mark.parametrize("first,second,kind", [
    (("file", "p", b"data"), ("dir", "p"), "dir"),
    (("file", "p", b"data"), ("symlink", "p", "/etc"), "symlink"),
    (("symlink", "p", "x"), ("file", "p", b"new"), "file"),
])
def test_replacement_between_kinds(tmp_path, first, second, kind):
    _src, fs = build(tmp_path, [[first], [second]])
    assert fs.lookup("p").kind == kind
    assert fs.version_at("p", 0).hidden_how == "overwritten"


def test_file_replacing_directory_takes_the_subtree(tmp_path):
    src, fs = build(tmp_path, [[("file", "p/a", b"123"), ("file", "p/b/c", b"45")], [("file", "p", b"x")]])
    assert visible(fs) == {"p": "file"}
    assert fs.version_at("p/b/c", 0).hidden_how == "parent replaced"
    assert analyze(src.image, fs).summary.reclaimable_bytes == 5


def test_directory_over_directory_keeps_children(tmp_path):
    _src, fs = build(tmp_path, [[("dir", "d", 0o755), ("file", "d/f", b"1")], [("dir", "d", 0o700)]])
    assert visible(fs) == {"d": "dir", "d/f": "file"}
    assert fs.lookup("d").mode == 0o700


def test_hardlinks_share_one_body(tmp_path):
    src, fs = build(tmp_path, [
        [("file", "bin/busybox", b"x" * 100), ("hardlink", "bin/sh", "bin/busybox")],
        [("whiteout", "bin/busybox")],  # the body stays visible through the link
    ])
    assert visible(fs) == {"bin": "dir", "bin/sh": "hardlink"}
    s = analyze(src.image, fs).summary
    assert (s.layer_bytes, s.visible_bytes, s.reclaimable_bytes) == (100, 100, 0)


def test_hardlink_body_counted_once(tmp_path):
    src, fs = build(tmp_path, [[("file", "a", b"x" * 10), ("hardlink", "b", "a"), ("hardlink", "c", "a")]])
    s = analyze(src.image, fs).summary
    assert (s.layer_bytes, s.visible_bytes, s.files, s.hardlinks) == (10, 10, 3, 2)


def test_overwritten_file_is_reclaimable_with_chmod_fix(tmp_path):
    src, fs = build(tmp_path, [[("file", "base", b"")], [("file", "f", b"abcdef")], [("file", "f", b"abcdef", 0o755)]],
                    history=["ADD rootfs.tar /", "/bin/sh -c cp x f", "/bin/sh -c chmod +x f"])
    result = analyze(src.image, fs)
    [group] = result.wasted
    assert group.how == "overwritten" and group.bytes == 6
    assert "chmod" in group.fix


def test_dot_dot_entries_never_leave_the_root(tmp_path):
    import tarfile

    evil = tarfile.TarInfo("../../etc/evil")
    evil.size = 3
    abs_ = tarfile.TarInfo("/abs/file")
    abs_.size = 2
    _src, fs = build(tmp_path, [[("raw", evil, b"bad"), ("raw", abs_, b"ok")]])
    assert visible(fs) == {"abs": "dir", "abs/file": "file"}
    kinds = {f.kind for f in fs.findings}
    assert {"unsafe-path", "absolute-path"} <= kinds


def test_symlink_resolution_is_confined_and_detects_cycles(tmp_path):
    _src, fs = build(tmp_path, [[
        ("file", "data/real", b"1"), ("symlink", "data/rel", "real"), ("symlink", "data/abs", "/data/real"),
        ("symlink", "escape", "../../etc/passwd"), ("symlink", "loop1", "loop2"), ("symlink", "loop2", "loop1"),
        ("symlink", "lib", "usr/lib"), ("file", "usr/lib/libc.so", b"elf"),
    ]])
    assert fs.resolve("data/rel") == "data/real"
    assert fs.resolve("data/abs") == "data/real"
    assert fs.resolve("lib/libc.so") == "usr/lib/libc.so"
    assert fs.resolve("escape") is None
    assert fs.resolve("loop1") is None
    kinds = {(f.kind, f.path) for f in fs.findings}
    assert ("link-escape", "escape") in kinds and ("symlink-cycle", "loop1") in kinds


def test_entries_through_a_symlinked_parent_land_in_its_target(tmp_path):
    _src, fs = build(tmp_path, [[("dir", "usr/lib"), ("symlink", "lib", "usr/lib")], [("file", "lib/libx.so", b"x")]])
    assert fs.lookup("usr/lib/libx.so") is not None
    assert fs.lookup("lib").kind == "symlink"


def test_dive_metrics_count_deleted_files_as_zero(tmp_path):
    # dive's quirk: a whiteout of a file adds 0 bytes, a whiteout of a directory adds what it hid
    src, fs = build(tmp_path, [
        [("file", "f", b"x" * 10), ("file", "d/a", b"y" * 20)],
        [("whiteout", "f"), ("whiteout", "d")],
    ])
    d = analyze(src.image, fs).dive
    # f: 10 + 0 (two nodes, inefficient); d: only one leaf node (the whiteout) with 20; d/a: 20
    assert d.wasted_bytes == 10
    assert d.efficiency == pytest.approx((0 + 20 + 20) / (10 + 20 + 20))


@pytest.mark.parametrize("name", [".wh.", "etc/.wh.", ".wh..", "etc/.wh.."])
def test_a_whiteout_that_names_no_file_is_refused_not_applied(tmp_path, name):
    """Issue 16 (19): ``.wh.`` hid /keep and /etc but left /etc/passwd visible (and squash then wrote
    etc/passwd without its directory). It names no file: refused like a '..' entry, reported once."""
    import tarfile

    from bilge.rewrite import squash

    raw = tarfile.TarInfo(name)
    src, fs = build(tmp_path, [[("file", "keep", b"k"), ("file", "etc/passwd", b"root:x:0:0")],
                               [("raw", raw, b"")]])
    assert visible(fs) == {"keep": "file", "etc": "dir", "etc/passwd": "file"}
    assert [(f.kind, f.layer) for f in fs.findings] == [("unsafe-path", 1)]
    assert "names no file" in fs.findings[0].message
    out = tmp_path / "sq.tar"
    squash(src, f"oci-archive:{out}")
    _, fs2 = build_from(f"oci-archive:{out}")
    assert visible(fs2) == visible(fs) and not fs2.findings


def build_from(ref):
    src = open_image(ref)
    return src, walk_image(src)


def test_the_walk_collects_cycles_less_often_and_restores_the_collector(tmp_path):
    """A walk builds objects that live to its end: the cyclic collector's youngest generation runs every
    GEN0_DURING_WALK allocations during it (not every 700), as the walk's visitors see, and the
    thresholds are back afterwards, after a visitor's error too, and a collector switched off stays off."""
    import gc

    from bilge.fs import GEN0_DURING_WALK

    path = tmp_path / "img.tar"
    docker_archive(path, [[("file", f"f{i}", b"x") for i in range(3)]])
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    with open_image(f"docker-archive:{path}") as src:
        walk_image(src, visitors=[lambda layer, entry: seen.append(gc.get_threshold())])
    assert seen and all(t == (GEN0_DURING_WALK, *before[1:]) for t in seen) and gc.get_threshold() == before

    def fails(layer, entry):
        raise RuntimeError("visitor")

    with open_image(f"docker-archive:{path}") as src, pytest.raises(RuntimeError):
        walk_image(src, visitors=[fails])
    assert gc.get_threshold() == before
    try:
        gc.set_threshold(0)
        with open_image(f"docker-archive:{path}") as src:
            walk_image(src, visitors=[lambda layer, entry: seen.append(gc.get_threshold())])
        assert seen[-1][0] == 0
    finally:
        gc.set_threshold(*before)
