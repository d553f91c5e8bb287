"""``slim --probe`` writes the merged filesystem during the one read of the layers (issue 13): the tree
must be what the merged filesystem shows, whatever a later layer deleted, replaced or hid; and the slim
layer written from the tree must be member for member what the layer reader (squash_members, a second
read of the layers) writes."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile

import pytest

from bilge.probe import where
from bilge.probe.materialise import materialise
from bilge.probe.tree import TreeView, tree_members
from bilge.rewrite.squash import SquashCounts, plan_squash, squash_members
from bilge.source import open_image
from bilge.testing import config_for, docker_archive, layer_tar

BIG = os.urandom(3 << 20)  # read in several chunks
MTIME = 1_600_000_000  # layer i's entries: MTIME + i


def raw(name: str, kind: bytes, data: bytes | None = None, **kw) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if data is not None else 0
    for k, v in kw.items():
        setattr(info, k, v)
    return ("raw", info, data)


LAYERS = [
    [("dir", "a"), ("dir", "a/b"), ("file", "a/b/f1", b"one"), ("file", "a/g", b"gone later"),
     ("dir", "d"), ("file", "d/x", b"deleted dir's file"), ("dir", "usr"), ("dir", "usr/lib"),
     ("symlink", "lib", "usr/lib"), ("file", "usr/lib/libx.so", b"\x7fELF not really"),
     ("dir", "o"), ("file", "o/old1", b"1"), ("dir", "o/old2"), ("file", "o/old2/deep", b"2"),
     ("file", "h", b"H-body"), ("dir", "rep"), ("file", "rep/inner", b"inner"), ("file", "fdir", b"a file"),
     ("file", "big", BIG, 0o755), ("file", "k", b"kept with a link"), ("dir", "dev"), ("file", "dev/shipped", b"not written"),
     raw("usr/kmem", tarfile.CHRTYPE, devmajor=1, devminor=2, mode=0o640),
     raw("usr/ping", tarfile.REGTYPE, b"cap", pax_headers={"SCHILY.xattr.security.capability": "\x01\x02"},
         mode=0o755)],
    [("whiteout", "a/g"), ("opaque", "o"), ("file", "o/new", b"new"), ("hardlink", "a/hl", "h"), ("hardlink", "a/k2", "k"),
     ("file", "lib/liby.so", b"through the symlinked parent"), ("file", "rep", b"dir replaced by a file"),
     ("dir", "fdir"), ("file", "fdir/child", b"file replaced by a dir"), ("file", "a/b/f1", b"one again", 0o700),
     ("symlink", "s", "/etc/passwd")],
    [("whiteout", "h"), ("whiteout", "d")],
]


def _image(tmp_path) -> str:
    tars = [layer_tar(items, mtime=MTIME + i) for i, items in enumerate(LAYERS)]
    path = tmp_path / "img.tar"
    docker_archive(path, tars, config=config_for(tars))
    return f"docker-archive:{path}"


def _tree(root) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                with open(full, "rb") as fh:
                    out[rel] = ("file", hashlib.sha256(fh.read()).hexdigest())
    return out


def _members(gen) -> list[tuple]:
    out = []
    for m, body in gen:
        out.append((m.path, m.type, m.mode, m.uid, m.gid, m.mtime, m.size, m.linkname, m.devmajor, m.devminor,
                    m.xattrs, hashlib.sha256(body.read()).hexdigest() if body is not None else None))
    return out


@pytest.fixture
def parent(tmp_path):
    """Where the tree goes: a directory the sandbox user could reach when bilge runs as root."""
    return where.choose(tmp_path, 1 << 20).parent


def test_tree_written_during_the_read_is_the_merged_filesystem(tmp_path, parent):
    with open_image(_image(tmp_path)) as src:
        mat, read, writer = materialise(src, parent=parent)
        try:
            tree = _tree(mat.rootfs)
            # what the layer reader writes for the same filesystem (another code path: a second read)
            want: dict[str, tuple] = {}
            for m, body in squash_members(src, read, plan_squash(read, 0), SquashCounts()):
                if m.path.split("/")[0] in ("dev", "proc", "sys"):
                    continue
                if m.type == "dir":
                    want[m.path] = ("dir",)
                elif m.type == "symlink":
                    want[m.path] = ("symlink", m.linkname)
                elif m.type == "file":
                    want[m.path] = ("file", hashlib.sha256(body.read()).hexdigest())
            for m, _ in squash_members(src, read, plan_squash(read, 0), SquashCounts()):
                if m.type == "hardlink":  # same inode as its anchor: the anchor's content
                    want[m.path] = want[m.linkname]
            mounts = {"dev", "proc", "sys", "tmp", "var", "var/tmp", "run"}
            assert {p: v for p, v in tree.items() if p not in mounts} == want
            # by hand, the cases a streaming writer can get wrong
            assert "a/g" not in tree and "d" not in tree and "h" not in tree
            assert sorted(p for p in tree if p.startswith("o/")) == ["o/new"]
            assert tree["a/hl"] == ("file", hashlib.sha256(b"H-body").hexdigest())
            assert tree["usr/lib/liby.so"][0] == "file" and tree["lib"] == ("symlink", "usr/lib")
            assert tree["rep"][0] == "file" and tree["fdir/child"][0] == "file"
            assert tree["a/b/f1"] == ("file", hashlib.sha256(b"one again").hexdigest())
            assert tree["s"] == ("symlink", "/etc/passwd") and tree["dev"] == ("dir",)
            assert "usr/kmem" not in tree  # device nodes are never created
            # files carry the mtime of the layer that wrote them (a .pyc is valid only for its source's
            # recorded mtime, and the tree is read-only in the sandbox)
            assert os.lstat(mat.rootfs / "big").st_mtime == MTIME
            assert os.lstat(mat.rootfs / "a/b/f1").st_mtime == MTIME + 1
            assert os.lstat(mat.rootfs / "usr/lib/liby.so").st_mtime == MTIME + 1
            # the closure's view reads contents from the tree; metadata from the merged filesystem
            view = TreeView(read.fs, mat.rootfs)
            assert view.read_small("/usr/lib/libx.so") == b"\x7fELF not really"
            assert "unreadable ELF header" in view.elf("/usr/lib/libx.so").error and view.read_small("/a/g") is None
            assert view.read_small("/s") is None  # a symlink is never followed on the host
        finally:
            mat.remove()
    assert not mat.top.exists()


def test_slim_layer_from_the_tree_equals_the_one_from_the_layers(tmp_path, parent):
    with open_image(_image(tmp_path)) as src:
        mat, read, writer = materialise(src, parent=parent)
        try:
            # (what is under /dev is not in the tree: slim writes from the layers then, Session.tree_complete)
            for keep in (lambda p, v: not p.startswith("dev"), lambda p, v: not p.startswith(("dev", "big"))):
                plan = plan_squash(read, 0, keep=keep)
                from_layers = _members(squash_members(src, read, plan, SquashCounts()))
                from_tree = _members(tree_members(read, plan, mat.rootfs, SquashCounts(), writer.extras))
                assert from_tree == from_layers
                kinds = {m[1] for m in from_tree}
                assert {"file", "dir", "symlink", "hardlink", "char"} <= kinds
                assert any(m[10] for m in from_tree)  # the extended attribute came along
        finally:
            mat.remove()
