"""`bilge diff` on images built by the real engine, checked against an independent measurement:
both images unpacked by `umoci unpack` and walked with os.walk + hashlib (no bilge code), their
added / removed / modified sets and byte totals compared with bilge's JSON.

- the seed's first Dockerfile pattern (token build arg, cleanup in a later RUN) against its
  hand-written multistage rewrite, read from the engine (docker-daemon:) and an OCI layout (the
  session's ``seed_images``, shared with test_rewrite_seed.py);
- one image against a rebuild of it (same content, new mtimes) re-saved through `skopeo copy` to
  an OCI layout with other compression: no differences;
- an image against `bilge squash` of it: no filesystem differences;
- a `bilge slim` output against its input: exactly what umoci sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bilge.rewrite import slim
from bilge.source import open_image
from tests.integration.conftest import skopeo_copy, umoci_unpack

SRC = Path(__file__).resolve().parents[2] / "src"

SMALL = """\
FROM bilge-base:bookworm
ARG NONCE
RUN mkdir -p /app/lib && printf 'hello\\n' > /app/hello && cp /usr/bin/cat /app/lib/cat \\
 && ln /app/lib/cat /app/lib/cat2 && ln -s lib/cat /app/cat && rm -rf /var/log/apt /var/cache/debconf/*-old
RUN rm /app/hello && printf 'hello again\\n' > /app/hello2
ENV APP=/app
CMD ["/app/cat", "/etc/os-release"]
"""


def bilge_json(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "bilge", "diff", *args, "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def tree(rootfs: Path) -> dict[str, tuple]:
    """path -> (kind, size, sha256 hex, mode, uid, gid, symlink target, inode key): an unpacked rootfs
    walked without following links."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(rootfs, followlinks=False):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = "/" + os.path.relpath(full, rootfs)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(full, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        h.update(chunk)
                out[rel] = ("file", st.st_size, h.hexdigest(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, "",
                            (st.st_dev, st.st_ino))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", 0, "", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, "", None)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0, "", 0, st.st_uid, st.st_gid, os.readlink(full), None)
            else:
                out[rel] = ("other", 0, "", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, "", None)
    return out


def expected_diff(a: dict[str, tuple], b: dict[str, tuple]) -> tuple[dict[str, str], dict[str, int]]:
    """({path: change}, byte totals) computed from two walked trees, each inode's bytes once."""
    changes: dict[str, str] = {}
    for p in a.keys() | b.keys():
        x, y = a.get(p), b.get(p)
        if x is None:
            changes[p] = "added"
        elif y is None:
            changes[p] = "removed"
        elif x[0] != y[0]:
            changes[p] = "type"
        elif x[1:7] != y[1:7]:
            changes[p] = "modified"
    totals = {"added": 0, "removed": 0}
    for kind, side, where in (("added", b, "added"), ("removed", a, "removed")):
        seen = set()
        for p, ch in changes.items():
            n = side[p] if ch == where else None
            if n and n[0] == "file" and n[7] not in seen:
                seen.add(n[7])
                totals[kind] += n[1]
    return changes, totals


def unpack(tmp_path: Path, ref: str, name: str) -> Path:
    oci = tmp_path / f"oci-{name}"
    skopeo_copy(ref, f"oci:{oci}:latest", "--dest-compress-level", "1")  # umoci reads gzip only
    return umoci_unpack(oci, "latest", tmp_path / f"bundle-{name}")


def check_against_umoci(doc: dict, ta: dict, tb: dict) -> None:
    want, totals = expected_diff(ta, tb)
    got = {e["path"]: e["change"] for e in doc["entries"]}
    assert got == want
    sizes = {e["path"]: (e["a_size"], e["b_size"]) for e in doc["entries"]}
    for p in want:
        assert sizes[p] == (ta[p][1] if p in ta else 0, tb[p][1] if p in tb else 0), p
    assert (doc["summary"]["added_bytes"], doc["summary"]["removed_bytes"]) == (totals["added"], totals["removed"])
    # the visible totals of each side are the bytes of each unpacked tree, each inode once
    for key, t in (("a", ta), ("b", tb)):
        inodes = {n[7]: n[1] for n in t.values() if n[0] == "file"}
        assert doc["summary"][key]["visible_bytes"] == sum(inodes.values())
        assert doc["summary"][key]["files"] == sum(1 for n in t.values() if n[0] == "file")


@pytest.fixture(scope="module")
def small(built_image, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("ctx-diff-small")
    (ctx / "Dockerfile").write_text(SMALL)
    first = built_image(ctx, "diff-small", build_args={"NONCE": "1"})
    again = built_image(ctx, "diff-small", build_args={"NONCE": "2"})  # the RUNs run again: new mtimes
    return first, again


def test_seed_single_stage_against_its_multistage_rewrite(docker, seed_images, tmp_path):
    token, imgs = seed_images
    oci_multi = tmp_path / "oci-multi"
    skopeo_copy(f"docker-archive:{imgs['multi'].archive}", f"oci:{oci_multi}:latest", "--dest-compress-level", "1")
    doc = bilge_json(f"docker-daemon:{imgs['single'].tag}", f"oci:{oci_multi}:latest")
    assert token not in json.dumps(doc)  # the build arg is in A's history: masked
    ta = tree(unpack(tmp_path, f"docker-archive:{imgs['single'].archive}", "single"))
    tb = tree(umoci_unpack(oci_multi, "latest", tmp_path / "bundle-multi"))
    check_against_umoci(doc, ta, tb)
    s = doc["summary"]
    assert s["b"]["visible_bytes"] < s["a"]["visible_bytes"] and s["delta"]["compressed_bytes"] < 0
    assert s["shared_layers"] == 1  # FROM bilge-base:bookworm
    assert "/root/.netrc" not in {e["path"] for e in doc["entries"]}  # deleted in A: never visible
    rows = doc["history"]["rows"]
    assert rows[0]["op"] == "=" and rows[0]["same_layer"]


def test_rebuild_resaved_with_skopeo_has_no_differences(docker, small, tmp_path):
    first, again = small
    oci = tmp_path / "oci"
    skopeo_copy(f"docker-archive:{again.archive}", f"oci:{oci}:v1", "--dest-compress-format", "zstd")
    doc = bilge_json(f"docker-daemon:{first.tag}", f"oci:{oci}:v1")
    assert doc["entries"] == [] and doc["config"]["changes"] == [] and not doc["summary"]["differs"]
    assert doc["summary"]["a"]["compressed_bytes"] != doc["summary"]["b"]["compressed_bytes"]
    timed = bilge_json(f"docker-archive:{first.archive}", f"oci:{oci}:v1", "--mtime")
    assert timed["entries"], "a rebuild a second later has other mtimes"
    assert {tuple(e["what"]) for e in timed["entries"]} == {("mtime",)}


def test_squash_has_no_filesystem_differences(docker, small, tmp_path):
    first, _ = small
    out = tmp_path / "squashed.tar"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run([sys.executable, "-m", "bilge", "squash", str(first.archive), "-o", f"oci-archive:{out}"],
                   check=True, capture_output=True, env=env)
    doc = bilge_json(str(first.archive), f"oci-archive:{out}")
    assert doc["entries"] == [] and doc["config"]["changes"] == []
    assert doc["summary"]["b"]["layers"] == 1 and doc["summary"]["a"]["layers"] > 1
    assert doc["summary"]["a"]["visible_bytes"] == doc["summary"]["b"]["visible_bytes"]


def test_slim_output_against_its_input_matches_umoci(docker, small, tmp_path):
    first, _ = small
    out = tmp_path / "slim.tar"
    with open_image(str(first.archive)) as src:
        slim(src, f"docker-archive:{out}:diff-slim:it", ["/app"], entrypoint=True)
    doc = bilge_json(f"docker-archive:{first.archive}", f"docker-archive:{out}", "--depth", "1")
    ta = tree(unpack(tmp_path, f"docker-archive:{first.archive}", "in"))
    tb = tree(unpack(tmp_path, f"docker-archive:{out}", "slim"))
    check_against_umoci(doc, ta, tb)
    assert any(e["change"] == "removed" for e in doc["entries"])
    assert "/app/lib/cat2" not in {e["path"] for e in doc["entries"]}  # kept, hardlink and all
