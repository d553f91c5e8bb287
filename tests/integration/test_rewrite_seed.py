"""The seed's scenario on the real engine: scrub + slim a single-stage image against the same app
built with a hand-written multistage Dockerfile.

The two images (tests/integration/seed.py): the app is a Ruby script using the pg extension
(Debian's ruby + ruby-pg). The single-stage image is built like the seed's first Dockerfile: build
tools installed in one RUN and purged in a later one, a GitHub token passed as a build arg and
written to /root/.netrc, deleted in a later RUN. The multistage image builds in one stage and
installs only the runtime packages in a fresh final stage.

Checked: the slimmed image runs in the engine and prints what the original prints; `bilge secrets`
finds nothing in it and no byte of it holds the token; it is smaller than the multistage image by
the engine's own measure (`docker image inspect .Size`).
"""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest

from bilge.rewrite import scrub, slim
from bilge.secrets import scan_source
from bilge.source import open_image
from tests.integration.conftest import DOCKER, run

KEEP = ["/app", "/usr/lib/ruby", "/usr/lib/x86_64-linux-gnu/ruby"]


@pytest.fixture(scope="module")
def images(seed_images):
    """The session's seed images (tests/integration/seed.py), shared with test_diff_engine.py."""
    return seed_images


def size(tag: str) -> int:
    return int(json.loads(run([DOCKER, "image", "inspect", tag]))[0]["Size"])


def all_bytes(archive: Path) -> bytes:
    parts = [archive.read_bytes()]
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            if m.isfile():
                data = tf.extractfile(m).read()
                if data[:2] == b"\x1f\x8b":
                    parts.append(gzip.decompress(data))
    return b"".join(parts)


def test_scrub_then_slim_beats_the_multistage_build(docker, images, tmp_path):
    tok, built = images
    single, multi = built["single"], built["multi"]
    want = run([DOCKER, "run", "--rm", single.tag])
    assert want.startswith("pg ") and "it''s" in want
    assert run([DOCKER, "run", "--rm", multi.tag]) == want
    with open_image(str(single.archive)) as src:
        found, _ = scan_source(src)
    assert any(f.secret == tok for f in found)  # the seed's leak: history and the deleted .netrc

    scrubbed = tmp_path / "scrubbed.tar"
    with open_image(str(single.archive)) as src:
        # --remove-files: Debian's bundler man page carries an example GitHub token (a visible file)
        sres = scrub(src, f"oci-archive:{scrubbed}", remove_files=True)
    assert sres.details["remaining"] == []
    slimmed = tmp_path / "slim.tar"
    tag = "rewrite-seed-slim:it"
    with open_image(f"oci-archive:{scrubbed}") as src:
        res, plan = slim(src, f"docker-archive:{slimmed}:{tag}", KEEP, entrypoint=True)
    assert res.details["missing"] == []
    with open_image(f"docker-archive:{slimmed}") as src:
        after, _ = scan_source(src)
    from bilge.secrets import at_or_above

    assert at_or_above(after, "high") == []  # what bilge secrets fails on by default
    assert tok.encode() not in all_bytes(slimmed)
    try:
        run([DOCKER, "load", "-i", str(slimmed)])
        assert run([DOCKER, "run", "--rm", tag]) == want
        sizes = {"single-stage": size(single.tag), "multistage": size(multi.tag), "scrub+slim": size(tag)}
        print("engine sizes (docker image inspect .Size):", sizes)
        assert sizes["scrub+slim"] < sizes["multistage"] < sizes["single-stage"]
    finally:
        docker.rmi(tag)


def test_slimmed_image_runs_only_what_it_kept(docker, images, tmp_path):
    _tok, built = images
    out = tmp_path / "slim.tar"
    tag = "rewrite-seed-slim-only:it"
    with open_image(str(built["multi"].archive)) as src:
        res, plan = slim(src, f"docker-archive:{out}:{tag}", KEEP, entrypoint=True)
    try:
        run([DOCKER, "load", "-i", str(out)])
        assert run([DOCKER, "run", "--rm", tag]).startswith("pg ")
        # no shell, no apt: they were not kept
        proc = run([DOCKER, "run", "--rm", "--entrypoint", "ruby", tag, "-e",
                    "puts File.exist?('/bin/sh') || File.exist?('/usr/bin/apt')"])
        assert proc.strip() == "false"
        assert res.details["kept_bytes"] < res.details["visible_bytes"] / 2
    finally:
        docker.rmi(tag)
