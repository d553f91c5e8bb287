"""The three image writers, read back by skopeo and umoci (independent readers) where installed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from bilge.errors import BilgeError, DigestMismatchError, OutputError
from bilge.sink import Compression, ExistingLayer, Member, NewLayer, parse_output, write_image
from bilge.sink.common import verify_image
from bilge.sink.oci import open_layout_blob
from tests.tools import argv, run_tool, which

SKOPEO = which("skopeo")
UMOCI = which("umoci")

CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/sh"], "Labels": {"a": "b"}},
    "history": [
        {"created_by": "layer one"},
        {"created_by": "ENV X=1", "empty_layer": True},
        {"created_by": "layer two"},
    ],
}


def layers():
    return [
        NewLayer([
            (Member("etc", "dir", 0o755), None),
            (Member("etc/hello", "file", 0o640, uid=1000, gid=50, size=5), b"hello"),
            (Member("etc/link", "symlink", 0o777, linkname="hello"), None),
            (Member("etc/hard", "hardlink", 0o640, uid=1000, gid=50, linkname="etc/hello"), None),
            (Member("tmp", "dir", 0o1777), None),
        ]),
        NewLayer([(Member("etc/.wh.link", "file", 0o644), None), (Member("new", "file", size=3), b"new")]),
    ]




def test_parse_output():
    assert parse_output("oci:/x/y:v1").tag == "v1"
    assert parse_output("oci:dir").tag is None
    spec = parse_output("docker-archive:out.tar:myapp")
    assert (spec.transport, spec.path, spec.tag) == ("docker-archive", Path("out.tar"), "myapp:latest")
    assert parse_output("docker-archive:o.tar:reg.io/a/b:1.2").tag == "reg.io/a/b:1.2"
    for bad in ("out.tar", "docker:foo", "oci:", "oci:d:", "docker-archive:o.tar:UPPER:1", "zip:x"):
        with pytest.raises(BilgeError):
            parse_output(bad)


@pytest.mark.parametrize("fmt", ["oci", "oci-archive", "docker-archive"])
def test_each_format_round_trips_and_is_reproducible(tmp_path, fmt):
    tag = ":app:1" if fmt == "docker-archive" else ":v1"
    r1 = write_image(f"{fmt}:{tmp_path / 'one'}{tag}", CONFIG, layers())
    r2 = write_image(f"{fmt}:{tmp_path / 'two'}{tag}", CONFIG, layers())
    assert r1.manifest_digest == r2.manifest_digest
    if fmt != "oci":
        assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes()
    assert r1.config["rootfs"]["diff_ids"] == [rec.diff_id for rec in r1.layers]
    assert r1.config["history"] == CONFIG["history"]
    # nothing but the output is left in the directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]


@pytest.mark.skipif(not SKOPEO, reason="skopeo not installed")
@pytest.mark.parametrize("fmt", ["oci", "oci-archive", "docker-archive"])
def test_skopeo_reads_and_copies_every_format(tmp_path, fmt):
    out = tmp_path / "img"
    tag = ":app:1" if fmt == "docker-archive" else ":v1"
    result = write_image(f"{fmt}:{out}{tag}", CONFIG, layers())
    ref = f"{fmt}:{out}" + (":v1" if fmt == "oci" else "")
    info = json.loads(run_tool("skopeo", "inspect", ref).stdout)
    assert info["Env"] == ["PATH=/usr/bin"] and info["Labels"] == {"a": "b"}
    cfg = json.loads(run_tool("skopeo", "inspect", "--config", "--raw", ref).stdout)
    assert cfg["rootfs"]["diff_ids"] == [rec.diff_id for rec in result.layers]
    # skopeo copy verifies every blob digest on the way
    run_tool("skopeo", "copy", "--quiet", ref, f"dir:{tmp_path / 'copy'}")
    manifest = json.loads((tmp_path / "copy" / "manifest.json").read_bytes())
    assert len(manifest["layers"]) == 2
    for desc in manifest["layers"]:
        blob = (tmp_path / "copy" / desc["digest"].split(":")[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == desc["digest"]


@pytest.mark.skipif(not UMOCI or os.geteuid() != 0, reason="umoci (as root) not installed")
def test_umoci_unpacks_the_expected_tree(tmp_path):
    write_image(f"oci:{tmp_path / 'lay'}:v1", CONFIG, layers())
    subprocess.run([*argv("umoci"), "unpack", "--image", f"{tmp_path / 'lay'}:v1", str(tmp_path / "b")], check=True,
                   capture_output=True)
    root = tmp_path / "b" / "rootfs"
    got = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            got[str(p.relative_to(root))] = (oct(st.st_mode), st.st_uid, st.st_gid)
    assert got == {
        "etc": ("0o40755", 0, 0),
        "etc/hello": ("0o100640", 1000, 50),
        "etc/hard": ("0o100640", 1000, 50),
        "tmp": ("0o41777", 0, 0),
        "new": ("0o100644", 0, 0),
    }  # etc/link whited out by the second layer
    assert os.stat(root / "etc/hello").st_ino == os.stat(root / "etc/hard").st_ino
    assert (root / "new").read_bytes() == b"new"


def test_existing_layout_gets_a_new_manifest_and_the_tag_moves(tmp_path):
    out = tmp_path / "lay"
    first = write_image(f"oci:{out}:v1", CONFIG, layers())
    cfg2 = dict(CONFIG, config={"Cmd": ["/bin/true"]})
    second = write_image(f"oci:{out}:v1", cfg2, layers())
    write_image(f"oci:{out}:other", CONFIG, layers())
    index = json.loads((out / "index.json").read_bytes())
    tags = {m["digest"]: m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in index["manifests"]}
    assert tags[second.manifest_digest] == "v1"
    assert first.manifest_digest == [d for d, t in tags.items() if t == "other"][0]
    assert list(tags.values()).count("v1") == 1
    assert not [p for p in out.rglob(".*")]


def test_a_planted_symlink_at_the_old_fixed_temp_name_is_never_followed(tmp_path):
    """Issue 16 (1): the new index.json went to a fixed name through a call that followed symlinks."""
    out = tmp_path / "lay"
    write_image(f"oci:{out}:v1", CONFIG, layers())
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (out / ".index.json.bilge-tmp").symlink_to(victim)
    write_image(f"oci:{out}:v2", CONFIG, layers())
    assert victim.read_text() == "precious"
    assert not (out / "index.json").is_symlink()
    index = json.loads((out / "index.json").read_bytes())
    assert len(index["manifests"]) == 2


@pytest.mark.parametrize("planted", ["index.json", "oci-layout", "blobs", "blobs/sha256"])
def test_a_layout_with_a_symlinked_part_is_refused_and_nothing_is_written_elsewhere(tmp_path, planted):
    """Issue 16 (1, 2): the writers apply the reader's containment rules."""
    out = tmp_path / "lay"
    write_image(f"oci:{out}:v1", CONFIG, layers())
    elsewhere = tmp_path / "elsewhere"
    real = out / planted
    os.replace(real, elsewhere)
    real.symlink_to(elsewhere)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(OutputError, match="symbolic link"):
        write_image(f"oci:{out}:v2", CONFIG, layers())
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_symlink_planted_at_a_blob_name_is_replaced_not_followed(tmp_path):
    out = tmp_path / "lay"
    first = write_image(f"oci:{out}:v1", CONFIG, layers())
    victim = tmp_path / "victim"
    victim.write_text("precious")
    blob = out / "blobs" / "sha256" / first.config_digest.split(":")[1]
    blob.unlink()
    blob.symlink_to(victim)
    write_image(f"oci:{out}:v2", CONFIG, layers())
    assert victim.read_text() == "precious" and not blob.is_symlink()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == first.config_digest.split(":")[1]


def test_refuses_a_non_layout_directory_and_a_directory_as_archive(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "file").write_text("x")
    with pytest.raises(OutputError, match="not an OCI layout"):
        write_image(f"oci:{tmp_path / 'stuff'}", CONFIG, layers())
    with pytest.raises(OutputError, match="directory"):
        write_image(f"oci-archive:{tmp_path / 'stuff'}", CONFIG, layers())
    with pytest.raises(OutputError, match="does not exist"):
        write_image(f"docker-archive:{tmp_path / 'nope' / 'x.tar'}", CONFIG, layers())


@pytest.mark.parametrize("fmt", ["oci", "oci-archive", "docker-archive"])
def test_failure_midway_leaves_no_output_and_no_temp_files(tmp_path, fmt):
    def exploding():
        yield Member("a"), b""
        raise BilgeError("reader failed")

    (tmp_path / "keep").write_text("x")
    with pytest.raises(BilgeError, match="reader failed"):
        write_image(f"{fmt}:{tmp_path / 'out'}", CONFIG, [layers()[0], NewLayer(exploding())])
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]


def test_failure_keeps_an_existing_archive_untouched(tmp_path):
    target = tmp_path / "img.tar"
    target.write_bytes(b"previous")
    with pytest.raises(BilgeError):
        write_image(f"oci-archive:{target}", {"history": [{}]}, layers())  # misaligned history
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["img.tar"]


def test_history_must_align_with_layers(tmp_path):
    with pytest.raises(BilgeError, match="aligned"):
        write_image(f"oci:{tmp_path / 'x'}", dict(CONFIG, history=[{"created_by": "one"}]), layers())


def test_existing_layers_are_copied_byte_identical_and_checked(tmp_path):
    base = write_image(f"oci:{tmp_path / 'base'}", CONFIG, layers())
    rec = base.layers[0]
    blob_path = tmp_path / "base" / "blobs" / "sha256" / rec.digest.split(":")[1]
    existing = ExistingLayer(rec.digest, rec.size, rec.diff_id, "application/vnd.docker.image.rootfs.diff.tar.gzip",
                             lambda: blob_path.open("rb"))
    cfg = dict(CONFIG, history=[{"created_by": "base"}, {"created_by": "top"}])
    out = write_image(f"oci-archive:{tmp_path / 'x.tar'}", cfg, [existing, layers()[1]])
    assert out.layers[0].digest == rec.digest and out.layers[0].copied
    assert out.layers[0].media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    with tarfile.open(tmp_path / "x.tar") as tf:
        copied = tf.extractfile(f"blobs/sha256/{rec.digest.split(':')[1]}").read()
    assert copied == blob_path.read_bytes()
    lying = ExistingLayer("sha256:" + "0" * 64, rec.size, rec.diff_id, rec.media_type, lambda: blob_path.open("rb"))
    with pytest.raises(DigestMismatchError):
        write_image(f"oci:{tmp_path / 'y'}", cfg, [lying, layers()[1]])
    assert not (tmp_path / "y").exists()


def test_verification_catches_a_corrupted_blob(tmp_path):
    out = write_image(f"oci:{tmp_path / 'lay'}", CONFIG, layers(), compression=Compression("none"))
    verify_image(open_layout_blob(tmp_path / "lay"), out.manifest_digest)
    layer = tmp_path / "lay" / "blobs" / "sha256" / out.layers[1].digest.split(":")[1]
    data = bytearray(layer.read_bytes())
    data[600] ^= 1
    layer.write_bytes(bytes(data))
    with pytest.raises(OutputError, match="verification failed"):
        verify_image(open_layout_blob(tmp_path / "lay"), out.manifest_digest)


def test_docker_archive_layout(tmp_path):
    out = write_image(f"docker-archive:{tmp_path / 'd.tar'}:reg.example:5000/team/app:2", CONFIG, layers())
    with tarfile.open(tmp_path / "d.tar") as tf:
        names = tf.getnames()
        manifest = json.loads(tf.extractfile("manifest.json").read())
        index = json.loads(tf.extractfile("index.json").read())
        assert all(m.mtime == 0 and m.uid == 0 for m in tf.getmembers())
    assert names == sorted(names)
    assert manifest == [{
        "Config": "blobs/sha256/" + out.config_digest.split(":")[1],
        "RepoTags": ["reg.example:5000/team/app:2"],
        "Layers": ["blobs/sha256/" + r.digest.split(":")[1] for r in out.layers],
    }]
    ann = index["manifests"][0]["annotations"]
    assert ann == {"io.containerd.image.name": "reg.example:5000/team/app:2", "org.opencontainers.image.ref.name": "2"}


def test_source_date_epoch_sets_archive_mtimes(tmp_path, monkeypatch):
    write_image(f"oci-archive:{tmp_path / 'o.tar'}", CONFIG, layers(), clamp=1234)
    with tarfile.open(tmp_path / "o.tar") as tf:
        assert {m.mtime for m in tf.getmembers()} == {1234}


def test_zstd_layers_are_labelled_and_verified(tmp_path):
    out = write_image(f"oci:{tmp_path / 'z'}", CONFIG, layers(), compression=Compression("zstd", 9))
    assert {r.media_type for r in out.layers} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    blob = (tmp_path / "z" / "blobs" / "sha256" / out.layers[0].digest.split(":")[1]).read_bytes()
    import zstandard

    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == out.layers[0].diff_id
