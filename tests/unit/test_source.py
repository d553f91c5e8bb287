"""Reading images: every local format, selection by tag/index/platform, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import tarfile

import pytest

from bilge.errors import (
    AmbiguousImageError,
    BilgeError,
    DigestMismatchError,
    ImageFormatError,
    NotAnImageError,
    UnsupportedMediaTypeError,
)
from bilge.fs import walk_image
from bilge.reference import parse
from bilge.source import open_image
from bilge.testing import docker_archive, layer_tar, oci_layout, sha256

LAYERS = [[("file", "etc/hello", b"hello\n")], [("file", "usr/bin/tool", b"x" * 100), ("whiteout", "etc/hello")]]


def visible_paths(ref, **kw):
    with open_image(ref, **kw) as src:
        return sorted(p for p, _ in walk_image(src).visible())


def test_reference_parsing(tmp_path):
    f = tmp_path / "a:b.tar"
    docker_archive(f, LAYERS)
    assert parse(f"docker-archive:{f}").path == str(f)  # a colon in the path itself
    r = parse(f"docker-archive:{f}:myapp:1.0")
    assert (r.path, r.tag) == (str(f), "myapp:1.0")
    assert parse(f"docker-archive:{f}:@1").index == 1
    assert parse(str(f)).transport == "docker-archive"
    assert parse("docker://registry.example/app:1").transport == "docker"
    with pytest.raises(BilgeError, match="no such file"):
        parse(str(tmp_path / "missing.tar"))


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_docker_archive_layer_compressions(tmp_path, compression):
    path = tmp_path / "img.tar"
    docker_archive(path, LAYERS, compression=compression)
    assert visible_paths(str(path)) == ["etc", "usr", "usr/bin", "usr/bin/tool"]


def test_whole_archive_gzipped(tmp_path):
    path = tmp_path / "img.tar"
    docker_archive(path, LAYERS)
    gz = tmp_path / "img.tar.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert visible_paths(str(gz)) == ["etc", "usr", "usr/bin", "usr/bin/tool"]


@pytest.mark.parametrize("archive", [True, False])
@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
def test_oci_layout_dir_and_archive(tmp_path, archive, compression):
    path = tmp_path / ("img.oci.tar" if archive else "layout")
    oci_layout(path, [{"layers": LAYERS, "compression": compression}], archive=archive)
    ref = f"{'oci-archive' if archive else 'oci'}:{path}"
    assert visible_paths(ref) == ["etc", "usr", "usr/bin", "usr/bin/tool"]
    assert parse(str(path)).transport == ("oci-archive" if archive else "oci")


def test_several_images_need_a_choice(tmp_path):
    path = tmp_path / "bundle.tar"
    docker_archive(path, LAYERS, tags=["app:1"], more_images=1)
    with pytest.raises(AmbiguousImageError, match="app:1"):
        open_image(str(path))
    with open_image(f"docker-archive:{path}:app:1") as src:
        assert src.image.repo_tags == ("app:1",)
    with open_image(f"docker-archive:{path}:docker.io/library/app:1") as src:  # normalised tag
        assert src.image.repo_tags == ("app:1",)
    with open_image(f"docker-archive:{path}:@1") as src:
        assert src.image.repo_tags == ("other/image0:latest",)
    with pytest.raises(BilgeError, match="no image tagged 'nope'"):
        open_image(f"docker-archive:{path}:nope")
    with pytest.raises(BilgeError, match="no image @5"):
        open_image(f"docker-archive:{path}:@5")


def test_platform_selection(tmp_path):
    path = tmp_path / "multi.oci.tar"
    oci_layout(path, [
        {"layers": LAYERS, "platform": "linux/amd64", "group": "latest"},
        {"layers": [[("file", "arm", b"1")]], "platform": "linux/arm64", "group": "latest"},
    ])
    with open_image(f"oci-archive:{path}", platform="linux/arm64") as src:
        assert str(src.image.platform) == "linux/arm64"
    with pytest.raises(BilgeError, match="platforms present: linux/amd64, linux/arm64"):
        open_image(f"oci-archive:{path}", platform="linux/s390x")


def test_index_loop_is_an_error(tmp_path):
    # Content addressing makes a real self-containing index impossible to hash; a blob stored under a
    # digest that is not its own can still say so. Unverified, the loop is caught; verified, the digest is.
    layout = tmp_path / "layout"
    oci_layout(layout, [{"layers": LAYERS}], archive=False)
    fake = "sha256:" + "1" * 64
    child = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": fake, "size": 1}
    (layout / "blobs/sha256" / ("1" * 64)).write_text(json.dumps({"schemaVersion": 2, "manifests": [child]}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [child]}))
    with pytest.raises(ImageFormatError, match="index loop"):
        open_image(f"oci:{layout}", verify=False)
    with pytest.raises(DigestMismatchError):
        open_image(f"oci:{layout}")


def test_missing_blob_and_unknown_tag(tmp_path):
    layout = tmp_path / "layout"
    digests = oci_layout(layout, [{"layers": LAYERS, "ref": "v1"}], archive=False)
    with pytest.raises(BilgeError, match="no image tagged 'v2'; tags present: v1"):
        open_image(f"oci:{layout}:v2")
    manifest = json.loads((layout / "blobs/sha256" / digests["v1"].split(":")[1]).read_text())
    (layout / "blobs/sha256" / manifest["layers"][1]["digest"].split(":")[1]).unlink()
    with pytest.raises(ImageFormatError, match="layer 1 blob .* is missing"):
        open_image(f"oci:{layout}:v1")


def _tamper_layer(tmp_path, new_bytes_fn):
    layout = tmp_path / "layout"
    digests = oci_layout(layout, [{"layers": LAYERS, "ref": "v1"}], archive=False)
    manifest = json.loads((layout / "blobs/sha256" / digests["v1"].split(":")[1]).read_text())
    blob = layout / "blobs/sha256" / manifest["layers"][1]["digest"].split(":")[1]
    blob.write_bytes(new_bytes_fn(blob.read_bytes()))
    return layout


def test_digest_mismatch_names_the_layer(tmp_path):
    layout = _tamper_layer(tmp_path, lambda b: gzip.compress(layer_tar([("file", "evil", b"x")]), mtime=0))
    with open_image(f"oci:{layout}") as src, pytest.raises(DigestMismatchError, match="layer 1"):
        walk_image(src)
    with open_image(f"oci:{layout}", verify=False) as src:  # --no-verify reads it anyway
        assert walk_image(src).lookup("evil") is not None


def test_truncated_gzip_is_a_clear_error(tmp_path):
    layout = _tamper_layer(tmp_path, lambda b: b[: len(b) // 2])
    with open_image(f"oci:{layout}", verify=False) as src, pytest.raises(ImageFormatError, match="layer 1.*corrupt or truncated"):
        walk_image(src)


def test_unknown_layer_format(tmp_path):
    import bz2

    layout = _tamper_layer(tmp_path, lambda b: bz2.compress(gzip.decompress(b)))
    with open_image(f"oci:{layout}", verify=False) as src, pytest.raises(UnsupportedMediaTypeError, match="bzip2"):
        walk_image(src)


def test_not_an_image(tmp_path):
    plain = tmp_path / "rootfs.tar"
    with tarfile.open(plain, "w") as tf:
        tf.add(__file__, arcname="README.md")
    with pytest.raises(NotAnImageError, match="not an image"):
        open_image(str(plain))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not a tar at all" * 100)
    with pytest.raises(NotAnImageError):
        open_image(str(junk))


def test_estargz_style_multi_member_gzip_reads_every_member(tmp_path):
    # two gzip members, the second after the tar's end-of-archive marker (as eStargz writes its TOC)
    first = layer_tar([("file", "README.md", b"readme")])
    toc = layer_tar([("file", "stargz.index.json", b"{}")])
    blob = gzip.compress(first, mtime=0) + gzip.compress(toc, mtime=0)
    layout = tmp_path / "layout"
    oci_layout(layout, [{"layers": [[("file", "placeholder", b"")]]}], archive=False)
    index = json.loads((layout / "index.json").read_text())
    mdesc = index["manifests"][0]
    mpath = layout / "blobs/sha256" / mdesc["digest"].split(":")[1]
    manifest = json.loads(mpath.read_text())
    cpath = layout / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]
    config = json.loads(cpath.read_text())
    (layout / "blobs/sha256" / sha256(blob).split(":")[1]).write_bytes(blob)
    config["rootfs"]["diff_ids"] = [sha256(first + toc)]
    cbytes = json.dumps(config).encode()
    (layout / "blobs/sha256" / sha256(cbytes).split(":")[1]).write_bytes(cbytes)
    manifest["config"].update(digest=sha256(cbytes), size=len(cbytes))
    manifest["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(blob),
                           "size": len(blob)}]
    mbytes = json.dumps(manifest).encode()
    (layout / "blobs/sha256" / sha256(mbytes).split(":")[1]).write_bytes(mbytes)
    mdesc.update(digest=sha256(mbytes), size=len(mbytes))
    (layout / "index.json").write_text(json.dumps(index))
    assert visible_paths(f"oci:{layout}") == ["README.md"]  # verified: every member was hashed
