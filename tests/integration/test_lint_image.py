"""`bilge lint Dockerfile --image REF` end to end, on images a real Docker engine built.

Every byte count bilge attaches is checked against an independent measurement:

- layer contents: Python's ``tarfile`` over the layer tars of the ``docker save`` archive, each layer
  matched to its history entry by the Docker/OCI rule (non-empty history entries in order);
- a package's files: ``dpkg-query -L`` and ``stat`` inside a container of the image;
- what the build context sends: a walk of the context directory on disk;
- the build-arg token: ``docker history --no-trunc``.

The .dockerignore matcher is compared with what the engine actually copies for ``COPY . /ctx/``.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bilge.secrets.precision import github_token
from bilge.secrets.tokens import npm_token
from tests.integration.conftest import DOCKER, docker_rmi, run

REPO = Path(__file__).resolve().parents[2]

E2E_DOCKERFILE = """\
FROM bilge-base:bookworm AS build
ARG GITHUB_TOKEN
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev
RUN echo "x-access-token:$GITHUB_TOKEN" > /tmp/tok && gcc --version > /built.txt

FROM bilge-base:bookworm
ARG NPM_TOKEN
RUN rm -f /etc/apt/apt.conf.d/docker-clean && apt-get update && apt-get install -y --no-install-recommends make
RUN rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/lib /usr/lib
WORKDIR /app
COPY . .
RUN rm -rf /usr/share/doc && echo $NPM_TOKEN > /dev/null
RUN chown -R nobody /app
"""


def fake_token(prefix: str, seed: int) -> str:
    rnd = random.Random(seed)  # a fresh shape, stable across sessions so the engine's cache is reused
    if prefix == "ghp_":  # GitHub's format carries a checksum
        return github_token(prefix, "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(30)))
    if prefix == "npm_":  # so does npm's
        return npm_token("".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(30)))
    return prefix + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(36))


def bilge_lint(*args: str, cwd: Path) -> tuple[int, dict]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(REPO / "src")
    proc = subprocess.run([sys.executable, "-m", "bilge", "lint", *args, "-f", "json"], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


# --- an independent reader of `docker save` archives ---------------------------------------------------------

class SavedImage:
    """Layers of a `docker save` archive read with tarfile, each paired with its history entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with tarfile.open(path) as outer:
            manifest = json.load(outer.extractfile("manifest.json"))[0]
            config = json.load(outer.extractfile(manifest["Config"]))
            self.history = [h.get("created_by", "") for h in config.get("history", []) if not h.get("empty_layer")]
            self.layers: list[dict[str, tuple[str, int]]] = []  # path -> (type, size)
            for name in manifest["Layers"]:
                entries: dict[str, tuple[str, int]] = {}
                with tarfile.open(fileobj=outer.extractfile(name)) as inner:
                    for m in inner:
                        p = m.name.lstrip("./")
                        kind = "file" if m.isreg() else ("whiteout" if "/.wh." in "/" + p else "other")
                        entries[p] = (kind, m.size if m.isreg() else 0)
                self.layers.append(entries)
        assert len(self.history) == len(self.layers)

    def layer_of(self, needle: str) -> int:
        hits = [i for i, h in enumerate(self.history) if needle in h]
        assert len(hits) == 1, (needle, self.history)
        return hits[0]

    def file_bytes(self, layer: int, under: str = "") -> int:
        prefix = under.strip("/")
        return sum(size for p, (kind, size) in self.layers[layer].items()
                   if kind == "file" and (not prefix or p == prefix or p.startswith(prefix + "/")))

    def visible_before(self, layer: int, under: str) -> int:
        """Bytes of the files under ``under`` visible just below ``layer`` (the last version of each path)."""
        prefix = under.strip("/") + "/"
        last: dict[str, int] = {}
        for entries in self.layers[:layer]:
            for p, (kind, size) in entries.items():
                if p.startswith(prefix):
                    if kind == "file":
                        last[p] = size
                    elif kind == "whiteout":
                        gone = p.replace(".wh.", "")
                        last = {k: v for k, v in last.items() if k != gone and not k.startswith(gone + "/")}
        return sum(last.values())

    def overwritten(self, layer: int) -> int:
        """Bytes of earlier versions of the regular files ``layer`` writes again."""
        total = 0
        for p, (kind, _size) in self.layers[layer].items():
            if kind != "file":
                continue
            for entries in reversed(self.layers[:layer]):
                if p in entries:
                    total += entries[p][1] if entries[p][0] == "file" else 0
                    break
        return total


def context_bytes(ctx: Path, under: str = "") -> int:
    root = ctx / under if under else ctx
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


# --- fixtures ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def e2e_context(tmp_path_factory) -> Path:
    ctx = tmp_path_factory.mktemp("lint-e2e")
    (ctx / "Dockerfile").write_text(E2E_DOCKERFILE)
    rnd = random.Random(7)
    (ctx / "src").mkdir()
    (ctx / "src" / "app.py").write_text("print('hello')\n")
    (ctx / "src" / "blob.bin").write_bytes(bytes(rnd.getrandbits(8) for _ in range(300_000)))
    (ctx / ".git" / "objects").mkdir(parents=True)
    (ctx / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (ctx / ".git" / "objects" / "pack").write_bytes(bytes(rnd.getrandbits(8) for _ in range(20_000)))
    return ctx


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    return {"GITHUB_TOKEN": fake_token("ghp_", 1), "NPM_TOKEN": fake_token("npm_", 2)}


@pytest.fixture(scope="module", params=["buildkit", "legacy"])
def e2e_image(request, built_image, e2e_context, tokens):
    img = built_image(e2e_context, f"lint-e2e-{request.param}", buildkit=request.param == "buildkit",
                      build_args=tokens)
    yield img
    docker_rmi(img.tag)


@pytest.fixture(scope="module")
def e2e(e2e_image, e2e_context):
    code, out = bilge_lint("Dockerfile", "--image", str(e2e_image.archive), cwd=e2e_context)
    return code, out, SavedImage(e2e_image.archive)


def by_rule(out: dict, rule: str, line: int) -> dict:
    hits = [f for f in out["findings"] if f["rule"] == rule and f["line"] == line]
    assert len(hits) == 1, [(f["rule"], f["line"]) for f in out["findings"]]
    return hits[0]


# --- tests --------------------------------------------------------------------------------------------------------

def test_every_layer_instruction_is_aligned(e2e):
    _code, out, saved = e2e
    aligned = out["image"]["aligned"]
    assert out["image"]["unaligned_lines"] == []
    for line, needle in ((8, "apt-get install -y --no-install-recommends make"), (9, "rm -rf /var/lib/apt/lists/*"),
                         (10, "/usr/lib"), (13, "rm -rf /usr/share/doc"), (14, "chown -R nobody /app")):
        assert aligned[str(line)]["layer"] == saved.layer_of(needle), line
    assert out["image"]["base_layers"] == saved.layer_of("apt-get install -y --no-install-recommends make")


def test_cleanup_in_a_later_layer_frees_nothing(e2e):
    _code, out, saved = e2e
    f = by_rule(out, "cleanup-later-layer", 9)
    lists = saved.file_bytes(saved.layer_of("install -y --no-install-recommends make"), "/var/lib/apt/lists")
    assert lists > 1_000_000
    assert f["bytes"] == lists
    assert "frees 0 bytes" in f["message"] and "were committed by line 8" in f["message"]


def test_deleting_base_image_files_is_found_from_the_image(e2e):
    _code, out, saved = e2e
    f = by_rule(out, "cleanup-later-layer", 13)
    layer = saved.layer_of("rm -rf /usr/share/doc")
    assert f["bytes"] == saved.visible_before(layer, "/usr/share/doc") > 0
    assert f["details"]["image_only"] is True


def test_broad_copy_bytes(e2e):
    _code, out, saved = e2e
    f = by_rule(out, "broad-copy-from", 10)
    layer = saved.layer_of("/usr/lib")
    assert f["bytes"] == saved.file_bytes(layer) > 10_000_000
    assert f["details"]["duplicate_bytes"] == saved.overwritten(layer) > 0
    assert "bilge deps" in f["message"]


def test_toolchain_bytes_match_dpkg(e2e, e2e_image):
    _code, out, saved = e2e
    f = by_rule(out, "toolchain-in-final-stage", 8)
    # the package's files as dpkg lists them, sized in the layer that installed them (line 13 later deletes
    # /usr/share/doc, so the container alone would miss those bytes -- the layer still ships them)
    paths = run([DOCKER, "run", "--rm", "--entrypoint", "dpkg-query", e2e_image.tag, "-L", "make"]).split()
    layer = saved.layers[saved.layer_of("install -y --no-install-recommends make")]
    expected = sum(layer[p.lstrip("/")][1] for p in set(paths) if layer.get(p.lstrip("/"), ("", 0))[0] == "file")
    assert f["details"]["toolchain_packages"]["make"] == expected > 0


def test_apt_cache_without_docker_clean(e2e):
    _code, out, saved = e2e
    f = by_rule(out, "cache-not-cleaned", 8)
    # line 8 removes the base image's docker-clean hook (as Docker's cache-mount documentation does), so
    # it leaves apt's package cache and its lists; line 9 removes the lists in a later layer, which
    # frees nothing: both caches count at line 8, where the fix goes (and line 9 is cleanup-later-layer)
    layer = saved.layer_of("install -y --no-install-recommends make")
    cache, lists = saved.file_bytes(layer, "/var/cache/apt"), saved.file_bytes(layer, "/var/lib/apt/lists")
    assert cache > 0 and lists > 0
    assert f["bytes"] == cache + lists
    assert by_rule(out, "cleanup-later-layer", 9)["bytes"] == lists


def test_context_copy_and_chown(e2e, e2e_context):
    _code, out, _saved = e2e
    f = by_rule(out, "no-dockerignore", 12)
    assert f["bytes"] == context_bytes(e2e_context, ".git") > 20_000
    chown = by_rule(out, "recursive-chown", 14)
    assert chown["bytes"] == context_bytes(e2e_context)  # every copied file is stored again


def test_token_in_history_confirmed_and_masked(e2e, e2e_image, tokens):
    _code, out, _saved = e2e
    history = run([DOCKER, "history", "--no-trunc", "--format", "{{.CreatedBy}}", e2e_image.tag])
    assert f"NPM_TOKEN={tokens['NPM_TOKEN']}" in history
    assert tokens["GITHUB_TOKEN"] not in history  # the builder stage's history is not in the image
    final = by_rule(out, "secret-arg", 7)
    assert final["severity"] == "high" and final["details"]["confirmed"] is True
    assert "NPM_TOKEN=npm_…(40 chars)" in final["message"]
    builder = by_rule(out, "secret-arg", 2)
    assert builder["severity"] == "medium" and builder["details"]["confirmed"] is False
    text = json.dumps(out, ensure_ascii=False)
    assert tokens["NPM_TOKEN"] not in text and tokens["GITHUB_TOKEN"] not in text


def test_sorted_by_bytes(e2e):
    code, out, _saved = e2e
    assert code == 1
    sized = [f["bytes"] for f in out["findings"] if f["bytes"] is not None]
    assert sized == sorted(sized, reverse=True)
    assert out["findings"][0]["rule"] == "broad-copy-from"


def test_lint_of_the_builder_target(built_image, e2e_context, tokens):
    img = built_image(e2e_context, "lint-e2e-build", buildkit=True, build_args=tokens, target="build")
    try:
        _code, out = bilge_lint("Dockerfile", "--target", "build", "--image", str(img.archive), cwd=e2e_context)
        saved = SavedImage(img.archive)
        f = by_rule(out, "secret-arg", 2)
        assert f["severity"] == "high" and f["details"]["confirmed"] is True
        layer = by_rule(out, "secret-in-layer", 4)
        assert layer["details"]["image_paths"] == ["/tmp/tok"]
        tool = by_rule(out, "toolchain-in-final-stage", 3)
        gcc_layer = saved.layer_of("install -y --no-install-recommends gcc")
        assert tool["details"]["layer_bytes"] == saved.file_bytes(gcc_layer)
        assert 0 < tool["bytes"] <= tool["details"]["layer_bytes"]
        assert {"gcc-12", "libc6-dev"} <= set(tool["details"]["toolchain_packages"])
    finally:
        docker_rmi(img.tag)


# --- .dockerignore: bilge's matcher against what the engine copies ---------------------------------------------------

IGNORE = """\
# comment
.git
**/node_modules
*.md
!README.md
docs/**
!docs/keep.txt
/tmp
log/*.log
[ab].txt
secret?.env
"""

FILES = [
    "README.md", "CHANGES.md", "sub/NOTES.md", "node_modules/a/i.js", "web/node_modules/b.js", "docs/x.txt",
    "docs/keep.txt", "docs/deep/y.txt", "tmp/t", "sub/tmp/t", "log/app.log", "log/keep.txt", "a.txt", "c.txt",
    "secret1.env", "secret12.env", ".git/HEAD", "src/main.py", "Dockerfile.extra",
]


@pytest.mark.parametrize("buildkit", [True, False], ids=["buildkit", "legacy"])
def test_dockerignore_matches_the_engine(base_image, tmp_path, buildkit):
    from bilge.dockerfile.dockerignore import find, walk_context

    ctx = tmp_path / "ctx"
    for rel in FILES:
        p = ctx / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    (ctx / ".dockerignore").write_text(IGNORE)
    (ctx / "Dockerfile").write_text(f"FROM {base_image}\nCOPY . /ctx/\n")
    tag = f"lint-dockerignore:{'bk' if buildkit else 'legacy'}"
    run([DOCKER, "build", "-q", "-t", tag, str(ctx)], env={"DOCKER_BUILDKIT": "1" if buildkit else "0"})
    try:
        listing = run([DOCKER, "run", "--rm", tag, "find", "/ctx", "-type", "f"])
    finally:
        docker_rmi(tag)
    engine = {line.removeprefix("/ctx/") for line in listing.split()}
    ours = {e.rel for e in walk_context(ctx, find(ctx, ctx / "Dockerfile"))}
    assert ours == engine
