"""`bilge diff`: two images built in code, compared by content. Expected differences come from the
items the images are built from, not from bilge."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bilge.diff import BODY, DIGEST, Ignore, diff_sides, read_pair
from bilge.source import open_image
from bilge.testing import config_for, docker_archive, layer_tar, oci_layout

SRC = Path(__file__).resolve().parents[2] / "src"

BASE = [("dir", "etc"), ("file", "etc/os-release", b"ID=debian\n"), ("dir", "usr"), ("dir", "usr/bin"),
        ("file", "usr/bin/tool", b"T" * 5000, 0o755), ("file", "usr/bin/keep", b"K" * 300, 0o755),
        ("symlink", "usr/bin/alias", "tool"), ("dir", "var"), ("dir", "var/cache"),
        ("file", "var/cache/junk.bin", b"J" * 7000)]


def owned(path: str, data: bytes, uid: int) -> tuple:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.uid, info.gid = len(data), 0o644, uid, uid
    return ("raw", info, data)


def diff(tmp_path: Path, a_layers, b_layers, *, a_cfg=None, b_cfg=None, jobs: int = 2, **kw):
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    docker_archive(a, a_layers, config=a_cfg)
    docker_archive(b, b_layers, config=b_cfg, compression="gzip")
    with open_image(str(a)) as sa, open_image(str(b)) as sb:
        side_a, side_b = read_pair(sa, sb, jobs=jobs)
    return diff_sides(side_a, side_b, **kw)


def by_path(result) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {c.path: (c.change, c.what) for c in result.changes}


def test_same_files_in_other_layers_other_format_other_mtimes_no_differences(tmp_path):
    a_layers = [layer_tar(BASE[:5], mtime=1000), layer_tar(BASE[5:], mtime=2000)]
    b_layers = [layer_tar(BASE, mtime=99999)]  # one layer (a squash), gzip, other mtimes
    r = diff(tmp_path, a_layers, b_layers)
    assert r.changes == () and not r.differs
    assert r.a.visible_bytes == r.b.visible_bytes == 10 + 5000 + 300 + 7000
    r = diff(tmp_path, a_layers, b_layers, mtime=True)
    assert {c.what for c in r.changes} == {("mtime",)}
    # directories' mtimes are noise even then; every non-directory path differs
    assert {c.path for c in r.changes} == {"/etc/os-release", "/usr/bin/tool", "/usr/bin/keep", "/usr/bin/alias",
                                           "/var/cache/junk.bin"}


def test_added_removed_modified_by_kind(tmp_path):
    b_items = [i for i in BASE if i[1] not in ("var/cache/junk.bin", "usr/bin/alias", "usr/bin/keep")]
    b_items = [("file", "usr/bin/tool", b"U" * 5000, 0o755) if i[1] == "usr/bin/tool" else i for i in b_items]
    b_items += [("file", "usr/bin/keep", b"K" * 300, 0o700),  # same content, other mode
                ("file", "usr/bin/alias", b"now a file"),  # symlink -> file
                ("file", "usr/bin/new", b"N" * 123),
                owned("etc/owned", b"x", 1000)]
    a_items = BASE + [owned("etc/owned", b"x", 0)]
    r = diff(tmp_path, [layer_tar(a_items)], [layer_tar(b_items)])
    assert by_path(r) == {
        "/usr/bin/tool": ("modified", ("content",)),  # same size, other bytes: only a digest sees it
        "/usr/bin/keep": ("modified", ("mode",)),
        "/usr/bin/alias": ("type", ("type",)),
        "/usr/bin/new": ("added", ()),
        "/var/cache/junk.bin": ("removed", ()),
        "/etc/owned": ("modified", ("owner",)),
    }
    assert r.counts() == {"added": 1, "removed": 1, "modified": 3, "type": 1}
    by = r.bytes_by_change()
    assert by == {"added": 123, "removed": 7000, "modified_a": 5000 + 0, "modified_b": 5000 + 10}
    assert r.differs


def test_symlink_target_and_whiteouts(tmp_path):
    a_layers = [layer_tar(BASE)]
    b_layers = [layer_tar(BASE), layer_tar([("whiteout", "var/cache"), ("symlink", "usr/bin/alias", "keep")])]
    r = diff(tmp_path, a_layers, b_layers)
    assert by_path(r) == {"/usr/bin/alias": ("modified", ("target",)),
                          "/var/cache": ("removed", ()), "/var/cache/junk.bin": ("removed", ())}
    assert r.shared_layers == 1  # the bottom layer is the same blob content (same diff_id)


def test_shared_bottom_layers_hashed_once_and_still_compared(tmp_path):
    """Files of shared layers are hashed by one side only; a later layer that rewrites one of them on
    one side must still show up, and the result must not depend on reading in parallel or not."""
    shared = [layer_tar(BASE[:5]), layer_tar(BASE[5:])]
    a_layers = [*shared, layer_tar([("file", "etc/os-release", b"ID=debian\n")])]  # same bytes again
    b_layers = [*shared, layer_tar([("file", "usr/bin/keep", b"k" * 300, 0o755),
                                    ("hardlink", "usr/bin/keep2", "usr/bin/tool")])]
    results = [diff(tmp_path, a_layers, b_layers, jobs=j) for j in (1, 2)]
    for r in results:
        assert r.shared_layers == 2
        assert by_path(r) == {"/usr/bin/keep": ("modified", ("content",)), "/usr/bin/keep2": ("added", ())}
    assert [c.b for c in results[0].changes] == [c.b for c in results[1].changes]
    keep = next(c for c in results[1].changes if c.path == "/usr/bin/keep")
    # same path, same size: both bodies hashed (A's in the shared layer, by a second pass)
    assert keep.a[DIGEST] == hashlib.sha256(b"K" * 300).digest()
    assert keep.b[DIGEST] == hashlib.sha256(b"k" * 300).digest()
    added = next(c for c in results[1].changes if c.path == "/usr/bin/keep2")
    assert added.b[DIGEST] is None and added.b[BODY] == "usr/bin/tool"  # an added file differs whatever its bytes


def test_shared_layer_file_rewritten_with_the_same_bytes_is_a_mode_change_only(tmp_path):
    """A later layer that rewrites a shared-layer file with the same size (a chmod, an upgrade that
    keeps the size) is compared by content: the shared layer's body is hashed in a second pass."""
    shared = [layer_tar(BASE)]
    a_layers = [*shared, layer_tar([("file", "etc/motd", b"hello\n")])]
    b_layers = [*shared, layer_tar([("file", "usr/bin/tool", b"T" * 5000, 0o700),  # same bytes, chmod
                                    ("file", "etc/os-release", b"ID=ubuntu\n"),  # same size, other bytes
                                    ("file", "var/cache/junk.bin", b"J" * 7001)])]  # other size
    for jobs in (1, 2):
        r = diff(tmp_path, a_layers, b_layers, jobs=jobs)
        assert by_path(r) == {"/usr/bin/tool": ("modified", ("mode",)), "/etc/os-release": ("modified", ("content",)),
                              "/var/cache/junk.bin": ("modified", ("content",)), "/etc/motd": ("removed", ())}
        junk = next(c for c in r.changes if c.path == "/var/cache/junk.bin")
        assert junk.a[DIGEST] is None and junk.b[DIGEST] is None  # other sizes: no digest needed


def test_char_and_block_device_numbers_are_compared(tmp_path):
    def dev(path: str, kind: bytes, major: int, minor: int) -> tuple:
        info = tarfile.TarInfo(path)
        info.type, info.devmajor, info.devminor, info.mode = kind, major, minor, 0o666
        return ("raw", info, b"")

    a_layers = [layer_tar([("dir", "dev"), dev("dev/null", tarfile.CHRTYPE, 1, 3), dev("dev/zero", tarfile.CHRTYPE, 1, 5),
                           dev("dev/loop0", tarfile.BLKTYPE, 7, 0)])]
    b_layers = [layer_tar([("dir", "dev"), dev("dev/null", tarfile.CHRTYPE, 1, 3), dev("dev/zero", tarfile.CHRTYPE, 1, 7),
                           dev("dev/loop0", tarfile.BLKTYPE, 7, 1)])]
    r = diff(tmp_path, a_layers, b_layers)
    assert by_path(r) == {"/dev/zero": ("modified", ("device",)), "/dev/loop0": ("modified", ("device",))}
    from bilge.format.diff import to_json

    entries = {e["path"]: e for e in to_json(r)["entries"]}
    assert (entries["/dev/loop0"]["a"]["device"], entries["/dev/loop0"]["b"]["device"]) == ("7:0", "7:1")
    assert entries["/dev/zero"]["a"]["type"] == "char" and entries["/dev/loop0"]["a"]["type"] == "block"


def test_hardlinked_body_counted_once(tmp_path):
    a_layers = [layer_tar(BASE)]
    b_layers = [layer_tar([*BASE, ("file", "opt/big", b"B" * 9000), ("hardlink", "opt/big2", "opt/big"),
                           ("hardlink", "opt/big3", "opt/big")])]
    r = diff(tmp_path, a_layers, b_layers, depth=1)
    assert {c.path for c in r.changes if c.change == "added"} == {"/opt", "/opt/big", "/opt/big2", "/opt/big3"}
    assert all(c.b_size == 9000 for c in r.changes if c.path.startswith("/opt/"))
    assert r.bytes_by_change()["added"] == 9000
    assert r.b.visible_bytes - r.a.visible_bytes == 9000
    (group,) = [g for g in r.groups if g.directory == "/opt"]
    assert (group.added, group.b_bytes, group.delta) == (3, 9000, 9000)


def test_groups_by_directory_biggest_first(tmp_path):
    b_items = [i for i in BASE if i[1] != "var/cache/junk.bin"] + [("file", "etc/a", b"a" * 50)]
    r = diff(tmp_path, [layer_tar(BASE)], [layer_tar(b_items)], depth=1)
    assert [(g.directory, g.a_bytes, g.b_bytes, g.delta) for g in r.groups] == [
        ("/var", 7000, 0, -7000), ("/etc", 0, 50, 50)]
    r = diff(tmp_path, [layer_tar(BASE)], [layer_tar(b_items)], depth=2)
    assert r.groups[0].directory == "/var/cache"


def test_ignore_patterns():
    ig = Ignore(["/var/cache", "*.pyc", "usr/share/doc/*"])
    assert ig("var/cache") and ig("var/cache/x/y")
    assert ig("app/__pycache__/m.cpython-311.pyc")
    assert ig("usr/share/doc/bash") and ig("usr/share/doc/bash/README")
    assert not ig("usr/share/doc") and not ig("var/cache2") and not ig("var/lib/x")


def test_ignore_leaves_out_paths(tmp_path):
    b_items = [i for i in BASE if i[1] != "var/cache/junk.bin"] + [("file", "etc/x.pyc", b"c")]
    r = diff(tmp_path, [layer_tar(BASE)], [layer_tar(b_items)], ignore=["/var/cache", "*.pyc"])
    assert r.changes == ()


def test_config_differences_masked_and_history_aligned(tmp_path):
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    a_tars = [layer_tar(BASE[:5]), layer_tar(BASE[5:])]
    b_tars = [a_tars[0], layer_tar(BASE[5:] + [("file", "app", b"x")])]
    hist_a = [{"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
              {"created_by": "/bin/sh -c #(nop)  ENV A=1", "empty_layer": True},
              {"created_by": "/bin/sh -c make"}]
    hist_b = [hist_a[0], {"created_by": f"/bin/sh -c #(nop)  ENV TOKEN={token}", "empty_layer": True},
              {"created_by": "/bin/sh -c make"}, {"created_by": "/bin/sh -c #(nop)  CMD [\"app\"]",
                                                   "empty_layer": True}]
    a_cfg = config_for(a_tars, raw_history=hist_a, env=["PATH=/bin", "A=1"])
    b_cfg = config_for(b_tars, raw_history=hist_b, env=["PATH=/bin", f"TOKEN={token}"],
                       extra={"config": {"Env": ["PATH=/bin", f"TOKEN={token}"], "Cmd": ["app"], "User": "app",
                                         "ExposedPorts": {"8080/tcp": {}}, "Labels": {"v": "2"}}})
    from bilge.redact import redact

    r = diff(tmp_path, a_tars, b_tars, a_cfg=a_cfg, b_cfg=b_cfg, mask=redact)
    cfg = {c.key: (c.a, c.b) for c in r.config}
    assert cfg["Env.A"] == ("1", None)
    assert cfg["Cmd"] == (None, '["app"]') and cfg["User"] == (None, "app")
    assert cfg["ExposedPorts.8080/tcp"] == (None, "") and cfg["Labels.v"] == (None, "2")
    assert cfg["Env.TOKEN"][0] is None and token not in cfg["Env.TOKEN"][1] and cfg["Env.TOKEN"][1].startswith("ghp_")
    ops = [(h.op, h.a.index if h.a else None, h.b.index if h.b else None) for h in r.history]
    assert ops == [("=", 0, 0), ("~", 1, 1), ("~", 2, 2), ("+", None, 3)]
    assert r.history[0].same_layer and not r.history[2].same_layer  # same instruction, other layer
    assert all(token not in (h.b.text if h.b else "") for h in r.history)


# ---- the command line -------------------------------------------------------------------------


def bilge(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=env)


@pytest.fixture
def pair(tmp_path):
    a, b = tmp_path / "a.tar", tmp_path / "b"
    docker_archive(a, [BASE])
    b_items = [i for i in BASE if i[1] != "var/cache/junk.bin"] + [("file", "etc/new", b"n" * 40)]
    oci_layout(b, [{"layers": [b_items], "ref": "latest", "compression": "zstd"}], archive=False)
    return f"docker-archive:{a}", f"oci:{b}:latest"


def test_cli_json_and_exit_codes(pair):
    a, b = pair
    proc = bilge("diff", a, b, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "bilge.diff/1"
    entries = {e["path"]: e for e in doc["entries"]}
    assert entries["/etc/new"] == {**entries["/etc/new"], "change": "added", "a_size": 0, "b_size": 40}
    assert entries["/etc/new"]["b"]["sha256"] is None  # an added file is not hashed: it differs whatever its bytes
    assert entries["/var/cache/junk.bin"]["change"] == "removed" and entries["/var/cache/junk.bin"]["a_size"] == 7000
    assert doc["summary"]["delta"]["visible_bytes"] == 40 - 7000
    assert set(doc) >= {"summary", "entries", "config", "history"}
    assert bilge("diff", a, b, "--exit-code", "-q").returncode == 1
    assert bilge("diff", a, a, "--exit-code", "-q").returncode == 0
    assert bilge("diff", a, b, "--exit-code", "--ignore", "/var/cache", "--ignore", "/etc/new",
                 "-q").returncode == 0


def test_cli_text(pair):
    a, b = pair
    proc = bilge("diff", a, b)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "visible" in out and "1 added (40 B), 1 removed (7.0 kB)" in out
    assert "/var/cache/junk.bin" in out and "/etc/new" in out
    proc = bilge("diff", a, a)
    assert "Filesystems: no differences" in proc.stdout


def test_cli_bad_input_one_line(tmp_path, pair):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all" * 100)
    for args in (("diff", pair[0], str(bad)), ("diff", str(tmp_path / "missing"), pair[1])):
        proc = bilge(*args)
        assert proc.returncode == 2
        assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
        assert proc.stderr.startswith("bilge: error:")


def test_truncated_second_image_is_an_error_from_the_child(tmp_path, pair):
    """The second image is read in a forked process: its errors still come out as one line, exit 2."""
    a = tmp_path / "full.tar"
    docker_archive(a, [BASE + [("file", "big", os.urandom(200_000))]], compression="gzip")
    data = a.read_bytes()
    # corrupt the layer's body in the middle: the digest check (or gzip) must fail, not a traceback
    with tarfile.open(a) as tf:
        m = next(m for m in tf.getmembers() if m.name.endswith("layer.tar"))
    start = m.offset_data + m.size // 2
    broken = tmp_path / "broken.tar"
    broken.write_bytes(data[:start] + bytes(64) + data[start + 64:])
    proc = bilge("diff", pair[0], str(broken))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_tar_builder_sanity():
    """The raw items used above really carry the uid (else the owner test would prove nothing)."""
    with tarfile.open(fileobj=io.BytesIO(layer_tar([owned("x", b"1", 1000)]))) as tf:
        assert tf.getmember("x").uid == 1000


def test_cli_masks_secrets_unless_asked(tmp_path):
    token = "ghp_" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8"
    tars = [layer_tar(BASE)]
    hist = [{"created_by": f"|1 GITHUB_TOKEN={token} /bin/sh -c echo {token} > /dev/null"}]
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    docker_archive(a, [BASE])
    docker_archive(b, tars, config=config_for(tars, raw_history=hist, env=[f"GITHUB_TOKEN={token}"]))
    for fmt in ("text", "json"):
        proc = bilge("diff", str(a), str(b), "--format", fmt)
        assert proc.returncode == 0, proc.stderr
        assert token not in proc.stdout and "ghp_" in proc.stdout
    proc = bilge("diff", str(a), str(b), "--format", "json", "--show-secrets")
    assert token in proc.stdout


def test_shared_layers_read_once_and_added_files_not_hashed(tmp_path):
    """The shared bottom layers are read once for both sides (B's copies never opened); a file only
    one side has is never hashed; the result is the same side by side or one after the other."""
    base = [layer_tar(BASE[:5]), layer_tar(BASE[5:])]
    big = layer_tar([("file", "opt/big", os.urandom(300_000)), ("file", "usr/bin/keep", b"x" * 300, 0o755)])
    docker_archive(tmp_path / "a.tar", base)
    docker_archive(tmp_path / "b.tar", [*base, big])
    log = tmp_path / "opened.log"
    results = []
    for jobs in (1, 2):
        with open_image(str(tmp_path / "a.tar")) as sa, open_image(str(tmp_path / "b.tar")) as sb:
            for name, src in (("a", sa), ("b", sb)):
                def opened(layer, _open=src.open_layer_blob, _name=name):
                    with open(log, "a") as fh:  # a file: the forked child's opens are seen too
                        fh.write(f"{_name}{layer.index}\n")
                    return _open(layer)
                src.open_layer_blob = opened
            side_a, side_b = read_pair(sa, sb, jobs=jobs)
        opens = sorted(log.read_text().split())
        log.unlink()
        # A's two layers for both; B's own layer; keep's shared body again (same path, same size in B)
        assert opens == ["a0", "a1", "a1", "b2"], opens
        assert side_a.hashed_bytes == 300  # keep (second pass)
        # one after the other, B starts knowing A's files: keep only, opt/big never; side by side,
        # B may hash opt/big before A's map arrives
        assert side_b.hashed_bytes == 300 if jobs == 1 else side_b.hashed_bytes in (300, 300_300)
        results.append(diff_sides(side_a, side_b))
    for r in results:
        assert by_path(r) == {"/opt": ("added", ()), "/opt/big": ("added", ()),
                              "/usr/bin/keep": ("modified", ("content",))}
    assert results[0].changes == results[1].changes


def test_write_json_is_the_same_data_one_list_item_per_line() -> None:
    import io
    import json as _json

    from bilge.format.diff import write_json

    doc = {"schema": "x/1", "empty": [], "nothing": {}, "n": None,
           "entries": [{"path": "/a\nb", "size": 1}, {"path": "/é", "tags": [1, 2]}, 3],
           "nested": {"rows": [["a", 1], ["b", 2]], "k": "v"}}
    out = io.StringIO()
    write_json(doc, out)
    text = out.getvalue()
    assert _json.loads(text) == doc
    lines = text.splitlines()
    assert '    {"path": "/a\\nb", "size": 1},' in lines  # each item whole on its own line
    assert '      ["b", 2]' in lines


def test_large_bodies_hashed_across_chunks(tmp_path):
    """Bodies longer than the hashing chunk (4 MiB) are hashed whole, straight from the layer stream."""
    one, two = os.urandom(9_000_001), os.urandom(9_000_001)
    r = diff(tmp_path, [layer_tar([("file", "blob", one), ("file", "next", b"n" * 10)])],
             [layer_tar([("file", "blob", two), ("file", "next", b"n" * 10)])])
    (c,) = r.changes
    assert c.path == "/blob" and c.what == ("content",)
    assert (c.a[DIGEST], c.b[DIGEST]) == (hashlib.sha256(one).digest(), hashlib.sha256(two).digest())


def test_hardlink_to_an_unhashed_body_is_hashed_in_a_second_pass(tmp_path):
    """B's /etc/y is not in A (added: not hashed while B reads, knowing A's files); B's /etc/x, a
    hardlink to it, has A's /etc/x as a same-size counterpart: its body is hashed afterwards."""
    body = b"same bytes\n"
    shared = [layer_tar(BASE)]
    a_layers = [*shared, layer_tar([("file", "etc/x", body)])]
    b_layers = [*shared, layer_tar([("file", "etc/y", body), ("hardlink", "etc/x", "etc/y"),
                                    ("file", "opt/pad", os.urandom(50_000))])]
    for jobs in (1, 2):
        r = diff(tmp_path, a_layers, b_layers, jobs=jobs)
        assert by_path(r) == {"/etc/y": ("added", ()), "/opt": ("added", ()), "/opt/pad": ("added", ())}
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    with open_image(str(a)) as sa, open_image(str(b)) as sb:
        side_a, side_b = read_pair(sa, sb, jobs=1)  # A (less of its own) first: B knows A's files
    assert side_b.nodes["etc/x"][DIGEST] == side_a.nodes["etc/x"][DIGEST] == hashlib.sha256(body).digest()
    assert side_b.nodes["etc/x"][BODY] == "etc/y" and side_b.nodes["etc/y"][DIGEST] is None
    assert side_b.hashed_bytes == len(body)  # the second pass only: opt/pad and etc/y never in the first
