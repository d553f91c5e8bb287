"""The one symlink walker (bilge.symlinks), on a small tree given as a table."""

from __future__ import annotations

from types import SimpleNamespace

from bilge.symlinks import MAX_SYMLINKS, walk


def tree(**nodes):
    table = {k.replace("__", "/"): SimpleNamespace(kind="symlink" if isinstance(v, str) else v[0],
                                                    linkname=v if isinstance(v, str) else "")
             for k, v in nodes.items()}
    return table.get


def test_links_followed_component_by_component_and_recorded_in_order():
    look = tree(usr=("dir",), usr__lib=("dir",), usr__lib__libc=("file",), lib="usr/lib", libc_link="/lib/libc")
    w = walk("/libc_link", look)
    assert (w.path, w.problem, w.kind, w.links) == ("usr/lib/libc", None, "file", ("libc_link", "lib"))
    assert walk("libc_link", look, follow_last=False).kind == "symlink"


def test_dotdot_above_the_root_escapes_unless_clamped():
    look = tree(etc=("dir",), up="../../etc")
    assert walk("/up", look).problem == "escape"
    assert (walk("/up", look, clamp=True).path, walk("/up", look, clamp=True).kind) == ("etc", "dir")


def test_missing_and_notdir_say_where_the_name_would_be():
    look = tree(a=("dir",), a__f=("file",))
    assert (walk("/a/x/y", look).path, walk("/a/x/y", look).problem) == ("a/x/y", "missing")
    assert (walk("/a/f/y", look).path, walk("/a/f/y", look).problem) == ("a/f/y", "notdir")
    assert walk("/e", tree(e="")).problem == "missing"  # an empty link names nothing


def test_forty_links_resolve_the_forty_first_is_a_cycle():
    chain = {f"l{i}": f"l{i + 1}" for i in range(MAX_SYMLINKS)}
    look = tree(**chain, **{f"l{MAX_SYMLINKS}": ("file",)})
    assert walk("/l0", look).path == f"l{MAX_SYMLINKS}"
    look = tree(**chain, **{f"l{MAX_SYMLINKS}": "l41", "l41": ("file",)})
    assert walk("/l0", look).problem == "cycle"
    assert walk("/loop", tree(loop="loop")).problem == "cycle"
