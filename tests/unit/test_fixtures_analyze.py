"""The real fixtures: every image opens and analyses, or fails with one clear line; numbers other
projects' own tests assert are reproduced here (dive, ggcr, scalibr, trivy, jib, stereoscope)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bilge.analyze import analyze
from bilge.fs import walk_image
from bilge.source import open_image
from tests.conftest import require_shared_fixtures

NOT_IMAGES = {"ggcr-no_manifest.tar", "ggcr-null_manifest.tar", "scalibr-NOT-AN-IMAGE-empty.tar",
              "dive-NOT-AN-IMAGE-rootfs-only.tar", "ggcr-layout-test_index_media_type.oci.tar"}
NEED_CHOICE = {"ggcr-test_bundle.tar": "test_image_1", "ggcr-test_link.tar": "bazel/v1/tarball:test_image_3",
               "regclient-testrepo.oci.tar": "v3", "ggcr-layout-test_index.oci.tar": "1"}


def images_dir():
    return require_shared_fixtures("images")


def expected(name):
    with open(images_dir() / "expected_values.json") as fh:
        return json.load(fh)[name]["asserted"]


def fixture_names():
    base = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "images")
    if not os.path.isdir(base):
        return ["(fixtures absent)"]
    return sorted(n for n in os.listdir(base) if n.endswith((".tar", ".tar.gz")))


def run_cli(*args, env=None):
    e = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=e, timeout=120)


@pytest.mark.parametrize("name", fixture_names())
def test_every_fixture_analyses_or_fails_clearly(name):
    path = images_dir() / name
    if name in NOT_IMAGES:
        proc = run_cli("analyze", str(path))
        assert proc.returncode == 2
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bilge: error:") and "Traceback" not in proc.stderr
        return
    ref = str(path) + (f":{NEED_CHOICE[name]}" if name in NEED_CHOICE else "")
    with open_image(ref) as src:
        fs = walk_image(src)
        result = analyze(src.image, fs)
    s = result.summary
    assert s.reclaimable_bytes == s.layer_bytes - s.visible_bytes >= 0
    assert s.verified  # every blob digest and diff_id checked while streaming
    proc = run_cli("analyze", "--format", "json", ref)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["visible_bytes"] == s.visible_bytes


def test_choice_is_required_where_ambiguous():
    for name in NEED_CHOICE:
        proc = run_cli("analyze", str(images_dir() / name))
        assert proc.returncode == 2 and "choose" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_dive_parity_on_dives_own_test_image():
    want = expected("dive-test-docker-image.tar")
    proc = run_cli("analyze", "--format", "json", str(images_dir() / "dive-test-docker-image.tar"))
    out = json.loads(proc.stdout)
    assert out["schema"] == "bilge.analyze/1"
    d = out["dive"]
    assert d["efficiency"] == want["efficiency"]
    assert d["wasted_bytes"] == want["wasted_bytes"]
    assert d["user_size_bytes"] == want["user_size_bytes"]
    assert d["user_wasted_percent"] == want["wasted_user_percent"]
    assert d["size_bytes"] == want["size_bytes"] == out["summary"]["layer_bytes"]
    assert {(f["path"], f["count"], f["bytes"]) for f in d["inefficient_files"] if f["bytes"]} == {
        (f["path"], f["count"], f["size_bytes"]) for f in want["inefficient_files"]}
    assert out["summary"]["entries"] == want["files_reported"]
    for layer, w in zip(out["layers"], want["layers"], strict=True):
        assert (layer["diff_id"], layer["layer_bytes"], layer["entries"]) == (w["diff_id"], w["size_bytes"],
                                                                               w["file_list_len"])
        assert layer["created_by"].endswith(w["command"].strip()) or w["command"].strip() in layer["created_by"]


@pytest.mark.parametrize("rules,expected_status", [
    # dive's own evaluator test on this image
    ({"lowestEfficiency": "0.99", "highestWastedBytes": "1B", "highestUserWastedPercent": "0.01"}, ["fail"] * 3),
    ({"lowestEfficiency": "0.9", "highestWastedBytes": "50kB", "highestUserWastedPercent": "0.5"}, ["pass"] * 3),
    ({"lowestEfficiency": "0.9", "highestWastedBytes": "1B", "highestUserWastedPercent": "0.5"},
     ["pass", "fail", "pass"]),
])
def test_dive_ci_rules_match_dives_evaluator(tmp_path, rules, expected_status):
    cfg = tmp_path / ".dive-ci"
    cfg.write_text("rules:\n" + "".join(f"  {k}: {v}\n" for k, v in rules.items()))
    proc = run_cli("analyze", "--ci", "--ci-config", str(cfg), "--format", "json",
                   str(images_dir() / "dive-test-docker-image.tar"))
    verdicts = {v["rule"]: v["status"] for v in json.loads(proc.stdout)["ci"]}
    assert [verdicts[k] for k in rules] == expected_status
    assert proc.returncode == (1 if "fail" in expected_status else 0)


def test_ci_from_environment_and_bilge_rules(tmp_path):
    (tmp_path / ".bilge.toml").write_text('highest-reclaimable-bytes = "30kB"\nlowest-efficiency = "disabled"\n'
                                          'highest-user-wasted-percent = "disabled"\n')
    image = str(images_dir() / "dive-test-docker-image.tar")
    proc = subprocess.run([sys.executable, "-m", "bilge", "analyze", "-q", image], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "CI": "true", "NO_COLOR": "1",
                                             "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "highest-reclaimable-bytes" in proc.stdout and "FAIL" in proc.stdout
    assert "\x1b[" not in proc.stdout  # NO_COLOR and a pipe: no escape codes


def test_ggcr_flatten_expectations():
    d = images_dir()
    with open_image(str(d / "ggcr-whiteout_image.tar")) as src:
        assert {p for p, _ in walk_image(src).visible()} == {"bar.txt"}
    with open_image(str(d / "ggcr-whiteout_dir.tar")) as src:
        assert {p for p, _ in walk_image(src).visible()} == {"a", "a/baz", "b", "b/bar"}
    with open_image(str(d / "ggcr-overwritten_file.tar")) as src:
        fs = walk_image(src)
        assert fs.lookup("foo.txt").kind == "symlink" and fs.resolve("foo.txt") == "bar.txt"
    with open_image(str(d / "ggcr-test_link.tar") + ":bazel/v1/tarball:test_image_3") as src:
        layer = [x for x in src.image.layers
                 if x.diff_id == "sha256:8897395fd26dc44ad0e2a834335b33198cb41ac4d98dfddf58eced3853fa7b17"]
        assert layer  # the layer member is a symlink inside the archive; it still reads and verifies
        assert walk_image(src).layers[layer[0].index].uncompressed_bytes > 0
    with open_image(str(d / "ggcr-hello-world-v25.tar")) as src:  # index.json "manifests": null
        assert str(src.image.platform) == "linux/arm64"


def test_scalibr_symlink_expectations():
    d = images_dir()
    with open_image(str(d / "scalibr-symlink-basic.tar")) as src:
        fs = walk_image(src)
        for link in ("absolute-symlink.txt", "relative-dot-symlink.txt", "relative-symlink.txt", "chain-symlink.txt"):
            assert fs.resolve(f"dir1/{link}") == "dir1/sample.txt"
    with open_image(str(d / "scalibr-symlink-cycle.tar")) as src:
        fs = walk_image(src)
        assert fs.resolve("dir1/sample.txt") is None
        assert any(f.kind == "symlink-cycle" for f in fs.findings)
    with open_image(str(d / "scalibr-symlink-attack.tar")) as src:
        fs = walk_image(src)
        assert fs.resolve("dir1/attack-symlink.txt") is None
        assert fs.resolve("dir1/attack-symlink-absolute.txt") is None
        assert sum(f.kind == "link-escape" for f in fs.findings) == 2
    with open_image(str(d / "scalibr-unpack-symlinks.tar")) as src:
        fs = walk_image(src)
        assert fs.resolve("dir2/dir3/absolute-symlink-inside-root.txt") == "dir1/sample.txt"
    with open_image(str(d / "scalibr-overwrite-file.tar")) as src:
        fs = walk_image(src)
        assert fs.lookup("sample.txt").size == len("overwritten sample text file\n")
        assert fs.version_at("sample.txt", 0).hidden_how == "overwritten"


def test_trivy_jib_and_stereoscope_facts():
    d = images_dir()
    with open_image(str(d / "trivy-alpine-311.tar.gz")) as src:
        fs = walk_image(src)
        layer = src.image.layers[0]
        assert layer.diff_id == "sha256:beee9f30bc1f711043e78d4a2be0668955d4b761d587d6f60c2c8dc081efb203"
        assert fs.layers[0].uncompressed_bytes == 5861888
        assert src.image.repo_tags == ("alpine:3.11",)
        assert layer.created_by.startswith("/bin/sh -c #(nop) ADD file:0c4555f363c2672e")
    for name in ("jib-docker-save.tar", "jib-jib-image.tar"):
        with open_image(str(d / name)) as src:
            assert [x.diff_id for x in src.image.layers] == [
                "sha256:5e701122d3347fae0758cd5b7f0692c686fcd07b0e7fd9c4a125fbdbbedc04dd",
                "sha256:f1ac3015bcbf0ada4750d728626eb10f0f585199e2b667dcd79e49f0e926178e"]
    with open_image(str(d / "jib-jib-image.tar")) as src:
        assert src.image.layers[0].digest == "sha256:0011328ac5dfe3dde40c7c5e0e00c98d1833a3aeae2bfb668cf9eb965c229c7f"
    multi = str(d / "stereoscope-multiplatform_oci_dir.oci.tar")
    with open_image(multi, platform="linux/arm64") as src:
        assert src.image.digest == "sha256:5ed07065bcbc6c52e3ad28526557d7b6833613fc79257b1a786de85e37c03b05"
    with open_image(multi, platform="linux/amd64") as src:
        assert src.image.digest == "sha256:e7c26a4b4d156fd9947ee82295b7b78acf7aa54b93b8f3e4b9f608179ffb20e8"
    proc = run_cli("analyze", "--platform", "linux/ppc64le", multi)
    assert proc.returncode == 2 and "linux/amd64, linux/arm64" in proc.stderr
    zstd = str(d / "dive-test-oci-zstd-image.tar")
    gz = str(d / "dive-test-oci-gzip-image.tar")
    with open_image(zstd) as a, open_image(gz) as b:
        assert a.image.layers[0].diff_id == b.image.layers[0].diff_id
        assert [p for p, _ in walk_image(a).visible()] == [p for p, _ in walk_image(b).visible()] == ["README.md"]
    with open_image(str(d / "dive-test-oci-estargz-image.tar")) as src:
        fs = walk_image(src)
        assert [p for p, _ in fs.visible()] == ["README.md"]
        assert fs.layers[0].uncompressed_bytes == 14848
    proc = run_cli("analyze", "--format", "json", str(d / "regclient-testrepo.oci.tar") + ":v1", "--platform",
                   "linux/arm64")
    assert proc.returncode == 0 and json.loads(proc.stdout)["image"]["platform"] == "linux/arm64"


def test_every_image_of_a_bundle_reads_and_verifies():
    # ggcr-test_bundle @0 has a LayerSources entry naming a compressed registry blob while the stored
    # layer.tar is uncompressed: the stored member's digest is its diff_id
    for ref in ("ggcr-test_bundle.tar:@0", "ggcr-test_bundle.tar:@1", "ggcr-test_link.tar:@0", "ggcr-test_link.tar:@1"):
        with open_image(str(images_dir() / ref)) as src:
            fs = walk_image(src)
            assert fs.layers and all(layer.verified for layer in fs.layers)
