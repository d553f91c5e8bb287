"""`bilge diff` on the real fixtures: every image against itself shows nothing; the same image in
other compressions or layouts shows nothing; pairs whose contents other projects' tests assert
(osv-scalibr's TestFromTarball chain layers) show exactly those differences."""

from __future__ import annotations

import pytest

from bilge.diff import diff_sides, read_pair
from bilge.source import open_image
from tests.conftest import require_shared_fixtures
from tests.unit.test_fixtures_analyze import NEED_CHOICE, NOT_IMAGES, expected, fixture_names


def ref(name: str) -> str:
    path = require_shared_fixtures("images", name)
    return str(path) + (f":{NEED_CHOICE[name]}" if name in NEED_CHOICE else "")


def run(a: str, b: str, **kw):
    with open_image(ref(a)) as sa, open_image(ref(b)) as sb:
        side_a, side_b = read_pair(sa, sb)
    return diff_sides(side_a, side_b, **kw)


@pytest.mark.parametrize("name", [n for n in fixture_names() if n not in NOT_IMAGES])
def test_every_fixture_against_itself(name):
    if name.startswith("("):
        require_shared_fixtures("images")
    r = run(name, name, mtime=True)
    assert r.changes == () and r.config == () and not r.differs
    assert all(h.op == "=" for h in r.history)
    assert r.a == r.b


@pytest.mark.parametrize(("a", "b"), [
    ("dive-test-oci-uncompressed-image.tar", "dive-test-oci-gzip-image.tar"),
    ("dive-test-oci-gzip-image.tar", "dive-test-oci-zstd-image.tar"),
    ("dive-test-oci-zstd-image.tar", "dive-test-oci-estargz-image.tar"),
])
def test_same_image_other_compression(a, b):
    r = run(a, b)
    assert r.changes == () and r.config == ()
    assert r.a.compressed_bytes != r.b.compressed_bytes and r.a.visible_bytes == r.b.visible_bytes


def chain(name: str) -> dict[str, str]:
    """The last chain layer scalibr's test asserts for ``name``: path -> content."""
    last = expected(name)["chain_layers"][-1]
    return {p: (("sample text file\n" * 400) if "x400" in v else v) for p, v in last.items()}


@pytest.mark.parametrize(("a", "b"), [
    ("scalibr-basic.tar", "scalibr-overwrite-file.tar"),
    ("scalibr-single-file.tar", "scalibr-multiple-files.tar"),
    ("scalibr-multiple-files.tar", "scalibr-single-file.tar"),
])
def test_scalibr_pairs_give_exactly_the_asserted_differences(a, b):
    fa, fb = chain(a), chain(b)
    want = {}
    for p in fa.keys() | fb.keys():
        if p not in fb:
            want["/" + p] = ("removed", len(fa[p]), 0)
        elif p not in fa:
            want["/" + p] = ("added", 0, len(fb[p]))
        elif fa[p] != fb[p]:
            want["/" + p] = ("modified", len(fa[p]), len(fb[p]))
    # directories that exist on one side only (from the asserted file paths)
    da = {"/" + p.rsplit("/", 1)[0] for p in fa if "/" in p}
    db = {"/" + p.rsplit("/", 1)[0] for p in fb if "/" in p}
    want.update({d: ("added", 0, 0) for d in db - da})
    want.update({d: ("removed", 0, 0) for d in da - db})
    r = run(a, b)
    assert {c.path: (c.change, c.a_size, c.b_size) for c in r.changes} == want
    assert r.bytes_by_change()["removed"] == sum(s for ch, s, _ in want.values() if ch == "removed")
