"""The source seam: one ImageSource interface, a transport table, the library front door, ONE platform
matcher, and every consumer working on the forward-only streams a registry or the engine hands out."""

from __future__ import annotations

import ast
import io
import random
import string
from pathlib import Path

import pytest

import bilge
from bilge.deps import image_view
from bilge.errors import AmbiguousImageError, BilgeError
from bilge.fs import walk_image
from bilge.image import Layer, Platform
from bilge.rewrite import squash
from bilge.secrets import scan_source
from bilge.secrets.precision import github_token
from bilge.source import open_image
from bilge.source.base import ImageSource
from bilge.source.platforms import choose, normalize, rank
from bilge.testing import docker_archive, oci_layout
from tests.unit.rewrite_helpers import visible_tree

SRC = Path(bilge.__file__).parent
RNG = random.Random(7)
TOKEN = github_token("ghp_", "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(30)))
LAYERS = [
    [("dir", "etc"), ("file", "etc/hello", b"hello\n"), ("file", "etc/token", f"TOKEN={TOKEN}\n".encode())],
    [("dir", "usr"), ("dir", "usr/bin"), ("file", "usr/bin/tool", b"x" * 3000), ("whiteout", "etc/hello")],
    [("file", "usr/bin/tool", b"y" * 10), ("file", "big", bytes(range(256)) * 4096)],
]


# ---------------------------------------------------------------------------------------------
# front door


def test_front_door_exports():
    from bilge import BilgeError as E
    from bilge import Entry, Image, Layer, open_image, walk_image  # noqa: F401

    assert E is BilgeError
    with pytest.raises(AttributeError):
        bilge.no_such_name  # noqa: B018


def test_readme_example_runs(tmp_path, capsys):
    """The five-line example of the README, run as written against a real archive."""
    path = tmp_path / "app.tar"
    docker_archive(path, LAYERS)
    readme = (SRC.parents[1] / "README.md").read_text()
    code = readme.split("## As a library\n\n```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 7
    exec(compile(code.replace("docker://registry.example/team/app:1.4", str(path)), "README", "exec"), {})
    out = capsys.readouterr().out
    assert "['usr/bin/tool', 'big']" in out and "step 2" in out


# ---------------------------------------------------------------------------------------------
# the seam itself


def test_every_source_implements_the_interface(tmp_path):
    docker_archive(tmp_path / "a.tar", LAYERS)
    oci_layout(tmp_path / "l", [{"layers": LAYERS}], archive=False)
    for ref in (str(tmp_path / "a.tar"), f"oci:{tmp_path / 'l'}"):
        with open_image(ref) as src:
            assert isinstance(src, ImageSource)


def test_archive_and_layout_never_import_each_other():
    for mod, other in (("archive", "layout"), ("layout", "archive")):
        tree = ast.parse((SRC / "source" / f"{mod}.py").read_text())
        names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [n for n in names if n.endswith(f"source.{other}")], (mod, names)


def test_unknown_transport_is_one_error():
    from bilge.reference import Reference

    with pytest.raises(BilgeError, match="unknown transport"):
        open_image(Reference("ftp", "x"))


# ---------------------------------------------------------------------------------------------
# one platform matcher (containerd's normalisation; skopeo and the engine agree)


@pytest.mark.parametrize("have,want,ok", [
    ("linux/arm64", "linux/arm64/v8", True),       # v8 is arm64's baseline: the variant is dropped
    ("linux/arm64/v8", "linux/arm64", True),
    ("linux/arm64/v9", "linux/arm64", False),
    ("linux/aarch64", "linux/arm64", True),
    ("linux/arm", "linux/arm/v7", True),           # a bare arm is arm/v7
    ("linux/arm/v6", "linux/arm/v7", True),        # an armv7 machine runs v6 images
    ("linux/arm/v7", "linux/arm/v6", False),
    ("linux/amd64", "linux/amd64/v3", True),
    ("linux/amd64/v1", "linux/amd64", True),
    ("linux/x86_64", "linux/amd64", True),
    ("linux/amd64", "linux/arm64", False),
    ("windows/amd64", "linux/amd64", False),
])
def test_platform_matcher(have, want, ok):
    assert (rank(Platform.parse(have), Platform.parse(want)) is not None) is ok


def test_closest_variant_wins_and_ties_are_ambiguous():
    items = [Platform.parse(p) for p in ("linux/arm/v5", "linux/arm/v6", "linux/arm64")]
    assert choose(items, lambda p: p, Platform.parse("linux/arm/v7"), "img") == items[1]
    with pytest.raises(AmbiguousImageError):
        choose([items[2], Platform.parse("linux/arm64/v8")], lambda p: p, Platform.parse("linux/arm64"), "img")
    assert normalize(Platform.parse("linux/armhf")) == Platform("linux", "arm", "v7")


def test_archive_and_layout_agree_on_arm64_variants(tmp_path):
    """Before: docker-archive refused arm64 for --platform linux/arm64/v8, the layout reader accepted it."""
    from bilge.testing import config_for, layer_tar

    tars = [layer_tar(items) for items in LAYERS]
    path = tmp_path / "arm.tar"
    docker_archive(path, LAYERS, config=config_for(tars, arch="arm64"))
    oci_layout(tmp_path / "arm", [{"layers": LAYERS, "platform": "linux/arm64"}], archive=False)
    for ref in (str(path), f"oci:{tmp_path / 'arm'}"):
        for want in ("linux/arm64", "linux/arm64/v8"):
            with open_image(ref, platform=want) as src:
                assert src.image.platform == Platform("linux", "arm64")
        with pytest.raises(BilgeError, match="arm64"):
            open_image(ref, platform="linux/arm64/v9")


# ---------------------------------------------------------------------------------------------
# every consumer on forward-only streams (what registries and the engine hand out)


class _ForwardOnly(io.RawIOBase):
    def __init__(self, raw) -> None:
        self._raw = raw
        self.reads = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b) -> int:
        data = self._raw.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


class ForwardOnlySource(ImageSource):
    """A local source whose blobs can only be read forward, once per open."""

    def __init__(self, inner: ImageSource) -> None:
        self.inner, self.image, self.verify = inner, inner.image, inner.verify

    def open_layer_blob(self, layer: Layer):
        return io.BufferedReader(_ForwardOnly(self.inner.open_layer_blob(layer)))

    def open_blob(self, digest: str):
        return io.BufferedReader(_ForwardOnly(self.inner.open_blob(digest)))

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize("verify", [True, False])
def test_consumers_work_on_forward_only_streams(tmp_path, compression, verify):
    path = tmp_path / "img.tar"
    docker_archive(path, LAYERS, compression=compression)

    def run(wrap: bool, out: Path):
        src = open_image(str(path), verify=verify)
        with ForwardOnlySource(src) if wrap else src as s:
            fs = walk_image(s)
            visible = sorted((p, v.size, v.layer) for p, v in fs.visible())
            findings, _stats = scan_source(s)
            view, _ = image_view(s)
            squash(s, f"oci:{out}:t", from_layer=1)
        return visible, sorted((f.rule, f.location.path) for f in findings), sorted(view._small), visible_tree(
            f"oci:{out}:t")

    plain = run(False, tmp_path / "plain")
    forward = run(True, tmp_path / "forward")
    assert forward == plain
    assert plain[1] and plain[1][0][1] == "etc/token"
