"""Wrong JSON types in manifest.json, index.json, manifests, descriptors and the config: one error line
naming the field and exit 2, never a traceback (issue 16: 3)."""

from __future__ import annotations

import pytest

from tests.hostile import images
from tests.hostile.harness import assert_clean_error, run_bilge

# (document, path, value, what the error line names)
CASES = [
    ("docker-save", (0, "RepoTags"), 5, "RepoTags"),
    ("docker-save", (0, "RepoTags"), [5], "RepoTags[0]"),
    ("docker-save", (0, "Layers"), "l0/layer.tar", "Layers"),
    ("docker-save", (0, "Config"), 7, "Config"),
    ("index", ("manifests",), 5, "manifests"),
    ("index", ("manifests", 0, "size"), "abc", "size"),
    ("index", ("manifests", 0, "annotations"), "x", "annotations"),
    ("index", ("manifests", 0, "platform"), "linux/amd64", "platform"),
    ("index", ("annotations",), [1], "annotations"),
    ("manifest", ("layers", 0, "size"), "abc", "size"),
    ("manifest", ("layers", 0, "size"), -5, "size"),
    ("manifest", ("layers", 0, "annotations"), "x", "annotations"),
    ("manifest", ("config", "size"), True, "size"),
    ("manifest", ("annotations",), 3, "annotations"),
    ("config", ("rootfs",), "x", "rootfs"),
    ("config", ("rootfs", "diff_ids"), 5, "diff_ids"),
    ("config", ("rootfs", "diff_ids"), [5], "diff_ids[0]"),
    ("config", ("history",), "abc", "history"),
    ("config", ("history",), [1, 2], "history[0]"),
    ("config", ("history", 0, "created_by"), 5, "created_by"),
    ("config", ("history", 0, "empty_layer"), "no", "empty_layer"),
    ("config", ("config", "Env"), 5, "Env"),
    ("config", ("config", "Env"), [1], "Env[0]"),
    ("config", ("config", "Cmd"), {"a": 1}, "Cmd"),
    ("config", ("config", "Labels"), {"k": 1}, "Labels"),
    ("config", ("config",), "x", "config"),
    ("config", ("architecture",), 5, "architecture"),
]


def _image(tmp_path, doc, path, value, transport):
    tmp_path.mkdir(parents=True, exist_ok=True)
    if doc == "docker-save":
        target = tmp_path / "img.tar"
        images.docker_save(target, manifest=lambda m: images.set_path(m, path, value))
        return f"docker-archive:{target}"
    if doc == "config":
        cfg = images.set_path(images.base_config(), path, value)
        if transport == "docker-archive":
            target = tmp_path / "img.tar"
            images.docker_save(target, config=cfg)
            return f"docker-archive:{target}"
        images.oci_layout(tmp_path / "oci", config=cfg)
        return f"oci:{tmp_path / 'oci'}"
    kw = {doc: lambda d: images.set_path(d, path, value)}
    images.oci_layout(tmp_path / "oci", **kw)
    return f"oci:{tmp_path / 'oci'}"


@pytest.mark.parametrize(("doc", "path", "value", "field"), CASES,
                         ids=[f"{c[0]}-{'.'.join(map(str, c[1]))}-{type(c[2]).__name__}" for c in CASES])
def test_wrong_type_is_one_error_line(tmp_path, doc, path, value, field):
    # a config is read by both readers; alternate them to keep the run short
    transports = [["docker-archive", "oci"][CASES.index((doc, path, value, field)) % 2]]
    for transport in transports:
        ref = _image(tmp_path / transport, doc, path, value, transport)
        commands = [["secrets"]] if path[-1] == "Env" or path == ("config",) else [["analyze"]]
        for cmd in commands:
            o = run_bilge([*cmd, ref], tmp_path, timeout=60)
            assert_clean_error(o, contains=field, max_seconds=20, max_rss=400 << 20)


def test_valid_documents_still_read(tmp_path):
    images.oci_layout(tmp_path / "oci")
    images.docker_save(tmp_path / "img.tar")
    for ref in (f"oci:{tmp_path / 'oci'}", f"docker-archive:{tmp_path / 'img.tar'}"):
        o = run_bilge(["analyze", "--format", "json", ref], tmp_path)
        assert o.code == 0 and '"files": 1' in o.stdout, o.describe()
