"""bilge squash against the real engine and independent unpackers.

- an image built by ``docker build`` (waste, hardlinks, symlinks, a setuid file, odd owners) is
  squashed into every output format; each is loaded into the engine (``docker load`` for
  docker-archive; ``skopeo copy ... docker-daemon:`` for the OCI forms, which Docker 20.10's
  ``docker load`` cannot read), run, and a listing made *inside the container* by GNU find and
  sha256sum is compared with the same listing in the original image;
- ``--base`` keeps the base layers: the engine sees the same layer ids;
- every fixture image is unpacked by umoci before and after squashing and the trees compared.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from bilge.rewrite import squash
from bilge.source import open_image
from tests.integration.conftest import DOCKER, run
from tests.tools import argv, run_tool, which

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "images"

DOCKERFILE = """\
FROM bilge-base:bookworm
RUN head -c 3000000 /dev/urandom > /opt/junk && mkdir -p /srv/app && echo one > /srv/app/config
RUN rm /opt/junk && echo two > /srv/app/config
RUN echo hello > /srv/app/hello && ln /srv/app/hello /srv/app/hello2 && ln -s hello /srv/app/link \\
 && cp /bin/true /srv/app/suid && chmod 4755 /srv/app/suid && chown 1234:5678 /srv/app/hello \\
 && mkdir -m 1777 /srv/app/tmp && rm -rf /usr/share/doc/* /var/log/apt
ENV APP_MODE=prod
WORKDIR /srv/app
USER 1234
EXPOSE 8080
LABEL org.example.team=bilge
CMD ["cat", "/srv/app/config"]
"""

# A listing made inside the container by GNU find + sha256sum: path, type, mode, owner, link
# target, link count (not for directories: overlayfs reports 1 for a directory merged from several
# layers), and each regular file's content hash.
LISTING = (
    "cd / && find . -xdev \\( -path ./proc -o -path ./sys -o -path ./dev -o -path ./etc/hostname "
    "-o -path ./etc/hosts -o -path ./etc/resolv.conf -o -path ./.dockerenv \\) -prune -o "
    "\\( -type d -printf '%p %y %m %U %G\\n' \\) -o -printf '%p %y %m %U %G %l %n\\n' | sort | sha256sum; "
    "find . -xdev \\( -path ./proc -o -path ./sys -o -path ./dev -o -path ./etc/hostname "
    "-o -path ./etc/hosts -o -path ./etc/resolv.conf \\) -prune -o -type f -print0 "
    "| sort -z | xargs -0 sha256sum | sha256sum; find . -xdev | wc -l"
)


def listing(tag: str) -> str:
    return run([DOCKER, "run", "--rm", "--user", "0", "--entrypoint", "sh", tag, "-c", LISTING])


def inspect(tag: str) -> dict:
    return json.loads(run([DOCKER, "image", "inspect", tag]))[0]


@pytest.fixture(scope="module")
def wasteful(built_image, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("ctx-wasteful")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return built_image(ctx, "rewrite-wasteful")


def test_squashed_image_loads_and_runs_in_every_format(docker, wasteful, tmp_path):
    want = listing(wasteful.tag)
    assert int(want.split()[-1]) > 1000  # the listing covers a real Debian filesystem
    orig = inspect(wasteful.tag)
    tags = []
    try:
        for fmt in ("docker-archive", "oci-archive", "oci"):
            tag = f"rewrite-sq-{fmt}:it"
            out = tmp_path / fmt
            dest = f"{fmt}:{out}:{tag}" if fmt == "docker-archive" else f"{fmt}:{out}:it"
            with open_image(str(wasteful.archive)) as src:
                res = squash(src, dest)
            assert res.bytes_saved >= 3_000_000  # the deleted /opt/junk and the first config
            if fmt == "docker-archive":
                assert f"Loaded image: {tag}" in run([DOCKER, "load", "-i", str(out)])
            else:
                docker.skopeo_copy(f"{fmt}:{out}:it" if fmt == "oci" else f"{fmt}:{out}", f"docker-daemon:{tag}")
            tags.append(tag)
            got = inspect(tag)
            assert len(got["RootFS"]["Layers"]) == 1
            assert got["RootFS"]["Layers"] == [r.diff_id for r in res.output.layers]
            for key in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes"):
                assert got["Config"].get(key) == orig["Config"].get(key), key
            assert listing(tag) == want, fmt
            assert run([DOCKER, "run", "--rm", tag]).strip() == "two"
            assert run([DOCKER, "run", "--rm", tag, "id", "-u"]).strip() == "1234"
    finally:
        docker.rmi(*tags)


def test_base_layers_stay_shared_in_the_engine(docker, wasteful, base_image, tmp_path):
    base_archive = docker.save(base_image, tmp_path / "base.tar")
    with open_image(str(base_archive)) as b:
        base = b.image
    out = tmp_path / "sq.tar"
    with open_image(str(wasteful.archive)) as src:
        res = squash(src, f"docker-archive:{out}:rewrite-sq-base:it", base=base)
    assert res.start == len(base.layers)
    tag = "rewrite-sq-base:it"
    try:
        run([DOCKER, "load", "-i", str(out)])
        got = inspect(tag)["RootFS"]["Layers"]
        assert got[: len(base.layers)] == inspect(base_image)["RootFS"]["Layers"]
        assert len(got) == len(base.layers) + 1
        assert listing(tag) == listing(wasteful.tag)
    finally:
        docker.rmi(tag)


def test_reproducible_across_runs_and_formats(wasteful, tmp_path):
    digests = []
    for i in range(2):
        with open_image(str(wasteful.archive)) as src:
            digests.append(squash(src, f"oci-archive:{tmp_path / f'{i}.tar'}").output.manifest_digest)
    assert digests[0] == digests[1]
    assert (tmp_path / "0.tar").read_bytes() == (tmp_path / "1.tar").read_bytes()


# --------------------------------------------------------------------------------------------
# umoci: an independent unpacker, before and after, on every fixture


def tree(rootfs: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(rootfs, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(rootfs).as_posix()
            st = os.lstat(p)
            extra: object = ""
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(p.read_bytes()).hexdigest()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, extra)
    for paths in inodes.values():
        for rel in paths:
            out[rel] = out[rel] + (tuple(sorted(paths)),)
    return out


def fixture_refs() -> list[str]:
    if not FIXTURES.is_dir():
        return []
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_rewrite_squash import FIXTURE_REFS

    return FIXTURE_REFS


@pytest.mark.parametrize("ref", fixture_refs() or ["<no fixtures>"])
def test_umoci_unpacks_the_same_tree_before_and_after(docker, tmp_path, ref):
    if ref == "<no fixtures>":
        pytest.skip("shared fixtures not found")
    docker.require_tool("umoci")
    skopeo_ref = ref if ":" in ref.split("/", 1)[0] else f"docker-archive:{ref}"
    if skopeo_ref.startswith("/"):
        skopeo_ref = f"docker-archive:{ref}"
    if ref.endswith(".oci.tar") or "oci" in Path(ref).name and ref.startswith("/"):
        skopeo_ref = f"oci-archive:{ref}"
    if ref.endswith(".tar.gz"):  # skopeo reads docker-archives, not gzip-wrapped ones
        import gzip

        (tmp_path / "plain.tar").write_bytes(gzip.decompress(Path(ref).read_bytes()))
        skopeo_ref = f"docker-archive:{tmp_path / 'plain.tar'}"
    try:
        docker.skopeo_copy(skopeo_ref.replace(":@", ":@"), f"oci:{tmp_path / 'in'}:x")
        before = tree(docker.umoci_unpack(tmp_path / "in", "x", tmp_path / "b1"))
    except Exception as exc:  # skopeo/umoci refuse some odd fixtures: nothing independent to compare with
        pytest.skip(f"skopeo/umoci cannot read this fixture: {str(exc).splitlines()[0]}")
    with open_image(ref) as src:
        squash(src, f"oci:{tmp_path / 'out'}:sq")
    after = tree(docker.umoci_unpack(tmp_path / "out", "sq", tmp_path / "b2"))
    assert after == before


@pytest.mark.skipif(not which("skopeo"), reason="skopeo not installed")
def test_skopeo_copy_verifies_every_squashed_blob(docker, wasteful, tmp_path):
    with open_image(str(wasteful.archive)) as src:
        squash(src, f"oci-archive:{tmp_path / 'o.tar'}:v1")
    proc = run_tool("skopeo", "copy", "--quiet", f"oci-archive:{tmp_path / 'o.tar'}", f"dir:{tmp_path / 'd'}",
                    check=False)
    assert proc.returncode == 0, proc.stderr


def _docker_squash() -> str | None:
    return which("docker-squash")


def test_against_docker_squash_bytes_and_time(docker, wasteful, tmp_path):
    """docker-squash (PyPI) squashes through the daemon and writes uncompressed layers; bilge reads the
    saved archive and writes gzip. Same image, same machine, one after the other."""
    import time

    tool = _docker_squash()
    if tool is None:
        if os.environ.get("BILGE_REQUIRE_INTEGRATION") == "1":
            pytest.fail("docker-squash is not installed (.ci/run installs it into /opt/docker-squash-venv)")
        pytest.skip("docker-squash is not installed (pip install docker-squash in a venv outside the repo)")
    t0 = time.perf_counter()
    with open_image(str(wasteful.archive)) as src:
        res = squash(src, f"docker-archive:{tmp_path / 'bilge.tar'}:rewrite-vs:bilge")
    t_bilge = time.perf_counter() - t0
    t0 = time.perf_counter()
    run([*argv("docker-squash"), "--output-path", str(tmp_path / "ds.tar"), "--load-image", "false", wasteful.tag])
    t_ds = time.perf_counter() - t0
    b_bilge, b_ds = (tmp_path / "bilge.tar").stat().st_size, (tmp_path / "ds.tar").stat().st_size
    print(f"bilge squash: {t_bilge:.1f}s {b_bilge} bytes; docker-squash: {t_ds:.1f}s {b_ds} bytes")
    assert b_bilge < b_ds
    assert res.bytes_saved > 3_000_000
