"""`bilge analyze` against independent measurements, on images a real engine built.

The Dockerfiles in ``dockerfiles/`` follow the seed's pattern (install, clean up in a later RUN,
a build-arg token, multistage) plus the replacement cases of the OCI spec. Each image is built by
Docker (legacy builder and BuildKit) or buildah, stored in every local form bilge reads, and
measured without bilge:

- ``visible_bytes`` / ``files``: ``umoci unpack`` of skopeo's OCI layout, then a walk of the rootfs
  (each hardlinked inode once);
- ``layer_bytes`` and ``diff_id`` per layer: Python's ``tarfile`` over each layer blob of the OCI
  layout (regular files only), hashing the decompressed stream;
- history: the image config as ``skopeo inspect --config`` reads it.

All forms of one image must agree on every number.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from bilge.secrets.precision import github_token
from tests.integration.conftest import (
    buildah_bud,
    buildah_push,
    ensure_buildah_base,
    require_tool,
    skopeo_copy,
    skopeo_inspect,
    umoci_unpack,
    walk_rootfs,
)

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
DOCKERFILES = HERE / "dockerfiles"
REPO = HERE.parents[1]
DEMO = REPO / "src" / "bilge" / "data" / "demo.tar.gz"
TOKEN_RE = re.compile(r"ghp_[A-Za-z0-9]{36}")


def fake_token(seed: str) -> str:
    """A GitHub-token-shaped fake (``ghp_`` + 36 [A-Za-z0-9]), stable per seed so the engine's
    build cache survives between sessions."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    n = int.from_bytes(hashlib.sha256(f"bilge crosscheck fake token: {seed}".encode()).digest(), "big")
    chars = []
    for _ in range(30):
        n, r = divmod(n, len(alphabet))
        chars.append(alphabet[r])
    return github_token("ghp_", "".join(chars))  # with GitHub's CRC32 checksum


# --------------------------------------------------------------------------------------------
# running bilge


def bilge_analyze(*args: str) -> dict[str, Any]:
    """``bilge analyze --format json ARGS`` in a subprocess; must exit 0 and print one JSON object."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env["NO_COLOR"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "bilge", "analyze", "--format", "json", "--no-ci", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, f"bilge analyze {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    result = json.loads(proc.stdout)
    assert result["schema"] == "bilge.analyze/1"
    return result


# --------------------------------------------------------------------------------------------
# independent measurement of an OCI layout


class _Hashing:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return "sha256:" + self.sha.hexdigest()


@dataclass(frozen=True)
class LayerCount:
    digest: str
    size: int  # stored (compressed) bytes
    diff_id: str
    regular_bytes: int
    whiteouts: tuple[str, ...]


_LAYER_CACHE: dict[str, LayerCount] = {}


def count_layer(blob: Path, digest: str, size: int) -> LayerCount:
    """Regular-file bytes of one layer blob (tarfile, streaming) and its diff_id."""
    if digest in _LAYER_CACHE:
        return _LAYER_CACHE[digest]
    with open(blob, "rb") as fh:
        magic = fh.read(2)
        fh.seek(0)
        raw: BinaryIO = gzip.GzipFile(fileobj=fh) if magic == b"\x1f\x8b" else fh  # type: ignore[assignment]
        stream = _Hashing(raw)
        total = 0
        whiteouts = []
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                if member.isreg():
                    total += member.size
                if os.path.basename(member.name).startswith(".wh."):
                    whiteouts.append(member.name.removeprefix("./"))
        diff_id = stream.drain()
    _LAYER_CACHE[digest] = LayerCount(digest, size, diff_id, total, tuple(whiteouts))
    return _LAYER_CACHE[digest]


def oci_manifest(oci_dir: Path, tag: str) -> dict[str, Any]:
    index = json.loads((oci_dir / "index.json").read_text())
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            algo, hexd = desc["digest"].split(":", 1)
            return json.loads((oci_dir / "blobs" / algo / hexd).read_text())
    raise AssertionError(f"tag {tag} not in {oci_dir}/index.json")


def count_oci_layers(oci_dir: Path, tag: str) -> list[LayerCount]:
    out = []
    for desc in oci_manifest(oci_dir, tag)["layers"]:
        algo, hexd = desc["digest"].split(":", 1)
        out.append(count_layer(oci_dir / "blobs" / algo / hexd, desc["digest"], desc["size"]))
    return out


# --------------------------------------------------------------------------------------------
# the images


@dataclass
class Case:
    name: str
    token: str | None
    oci_dir: Path
    tag: str
    forms: dict[str, str]  # form name -> bilge reference
    walk: dict[str, Any]
    layers: list[LayerCount]
    history: list[str]  # created_by of the history entries that made a layer (skopeo's view)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def result(self, form: str) -> dict[str, Any]:
        if form not in self.results:
            self.results[form] = bilge_analyze(self.forms[form])
        return self.results[form]


CASES = {
    # name: (dockerfile dir, builder)
    "seed-legacy": ("seed", "legacy"),
    "seed-buildkit": ("seed", "buildkit"),
    "multistage": ("multistage", "buildkit"),
    "seed-buildah": ("seed", "buildah"),
}


def measure(case: Case) -> Case:
    rootfs = umoci_unpack(case.oci_dir, case.tag, case.oci_dir.parent / "bundle")
    case.walk = walk_rootfs(rootfs)
    shutil.rmtree(rootfs.parent)
    case.layers = count_oci_layers(case.oci_dir, case.tag)
    config = skopeo_inspect(f"oci:{case.oci_dir}:{case.tag}", config=True)
    case.history = [h.get("created_by", "") for h in config.get("history", []) if not h.get("empty_layer")]
    return case


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    name = request.param
    directory, builder = CASES[name]
    token = fake_token(name)
    work = tmp_path_factory.mktemp(name)
    oci_dir = work / "oci"
    if builder == "buildah":
        request.getfixturevalue("base_image")
        require_tool("buildah")
        ensure_buildah_base()
        tag = f"localhost/bilge-it-{name}:latest"
        buildah_bud(DOCKERFILES / directory, tag, build_args={"GITHUB_ACCESS_TOKEN": token})
        buildah_push(tag, f"oci-archive:{work / 'image-oci.tar'}:latest")
        buildah_push(tag, f"docker-archive:{work / 'image-docker.tar'}:{tag}")
        skopeo_copy(f"oci-archive:{work / 'image-oci.tar'}:latest", f"oci:{oci_dir}:latest")
        forms = {
            "docker-archive": f"docker-archive:{work / 'image-docker.tar'}",
            "oci": f"oci:{oci_dir}:latest",
            "oci-archive": f"oci-archive:{work / 'image-oci.tar'}",
        }
    else:
        built = request.getfixturevalue("built_image")(
            DOCKERFILES / directory,
            f"{directory}-{builder}",
            buildkit=builder == "buildkit",
            build_args={"GITHUB_ACCESS_TOKEN": token},
        )
        # gzip level 1: skopeo compresses every layer here (~25% faster than its default level; the
        # numbers checked are the layout's own blobs, whatever their compression level)
        skopeo_copy(f"docker-archive:{built.archive}", f"oci:{oci_dir}:latest", "--dest-compress-level", "1")
        skopeo_copy(f"oci:{oci_dir}:latest", f"oci-archive:{work / 'image-oci.tar'}:latest")
        forms = {
            "docker-archive": f"docker-archive:{built.archive}",
            "oci": f"oci:{oci_dir}:latest",
            "oci-archive": f"oci-archive:{work / 'image-oci.tar'}:latest",
        }
    return measure(Case(name, token, oci_dir, "latest", forms, {}, [], []))


FORMS = ("docker-archive", "oci", "oci-archive")


@pytest.mark.parametrize("form", FORMS)
def test_visible_bytes_equal_umoci_walk(case: Case, form: str) -> None:
    summary = case.result(form)["summary"]
    assert summary["visible_bytes"] == case.walk["bytes"]
    assert summary["files"] == case.walk["files"]


@pytest.mark.parametrize("form", FORMS)
def test_layer_bytes_equal_tar_count(case: Case, form: str) -> None:
    result = case.result(form)
    layers = result["layers"]
    assert [layer["diff_id"] for layer in layers] == [c.diff_id for c in case.layers]
    assert [layer["layer_bytes"] for layer in layers] == [c.regular_bytes for c in case.layers]
    summary = result["summary"]
    assert summary["layer_bytes"] == sum(c.regular_bytes for c in case.layers)
    assert summary["reclaimable_bytes"] == summary["layer_bytes"] - case.walk["bytes"]
    assert result["image"]["layers"] == len(case.layers)
    if form in ("oci", "oci-archive"):  # blobs exactly as skopeo stored them
        assert [layer["digest"] for layer in layers] == [c.digest for c in case.layers]
        assert [layer["compressed_bytes"] for layer in layers] == [c.size for c in case.layers]
        assert summary["compressed_bytes"] == sum(c.size for c in case.layers)


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """Everything that must not depend on how the image is stored."""
    summary = {k: v for k, v in result["summary"].items() if k not in ("compressed_bytes",)}
    layers = [
        {k: v for k, v in layer.items() if k not in ("digest", "compressed_bytes", "compression")}
        for layer in result["layers"]
    ]
    return {"summary": summary, "layers": layers, "dive": result["dive"], "wasted": result["wasted"]}


def test_all_forms_agree(case: Case) -> None:
    reference = _comparable(case.result(FORMS[0]))
    for form in FORMS[1:]:
        assert _comparable(case.result(form)) == reference, f"{form} differs from {FORMS[0]}"


def _same_instruction(reported: str, truth: str, token: str | None) -> bool:
    """Equal, or equal up to a masked token (secrets may be masked in every output)."""
    if reported == truth:
        return True
    if token and token in truth:
        before, after = truth.split(token, 1)
        return reported.startswith(before + token[:3]) and reported.endswith(after) and token not in reported
    return False


def test_history_aligned_with_layers(case: Case) -> None:
    for form in FORMS:
        reported = [layer["created_by"] for layer in case.result(form)["layers"]]
        assert len(reported) == len(case.history)
        for got, want in zip(reported, case.history, strict=True):
            assert _same_instruction(got, want, case.token), (got, want)


def _covers(reported: str, path: str) -> bool:
    """A wasted entry names the path itself or a directory above it ("/usr/bin/")."""
    return reported == path or (reported.endswith("/") and path.startswith(reported))


def test_story(case: Case) -> None:
    result = case.result("oci")
    history = " ".join(case.history)
    if case.name.startswith("seed"):
        # Docker (both builders) and buildah record the build arg in the history: the seed's leak
        assert f"|1 GITHUB_ACCESS_TOKEN={case.token} " in history
        # the build tool's removal: the layer that holds /usr/bin/make's whiteout hides it
        purge = next(i for i, c in enumerate(case.layers) if "usr/bin/.wh.make" in c.whiteouts)
        make = [w for w in result["wasted"] if _covers(w["path"], "/usr/bin/make")]
        assert make, result["wasted"]
        assert all(w["hidden_by_layer"] == purge and w["layer"] < purge for w in make)
        assert result["summary"]["reclaimable_bytes"] > 500_000  # 300 kB deleted blob + 200 kB cache + make
    else:  # the final stage of a multistage build carries neither the token nor the tools
        assert case.token not in history
        assert case.token not in json.dumps(result)


# --------------------------------------------------------------------------------------------
# the demo image shipped in the package


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Case:
    if not DEMO.is_file():
        pytest.fail(f"{DEMO} missing (run demo/build.sh)")
    work = tmp_path_factory.mktemp("demo")
    archive = work / "demo.tar"
    with gzip.open(DEMO, "rb") as src, open(archive, "wb") as dst:
        shutil.copyfileobj(src, dst)
    skopeo_copy(f"docker-archive:{archive}", f"oci:{work / 'oci'}:latest")
    case = Case("demo", None, work / "oci", "latest", {}, {}, [], [])
    case.forms = {
        "embedded": "",
        "gzip": str(DEMO),
        "docker-archive": f"docker-archive:{archive}",
        "oci": f"oci:{work / 'oci'}:latest",
    }
    return measure(case)


def test_demo_image_numbers(demo: Case) -> None:
    embedded = bilge_analyze()  # no reference: the demo image
    assert bilge_analyze("--demo") == embedded
    for form in ("gzip", "docker-archive", "oci"):
        result = demo.result(form)
        assert result["summary"]["visible_bytes"] == demo.walk["bytes"]
        assert result["summary"]["files"] == demo.walk["files"]
        assert [layer["layer_bytes"] for layer in result["layers"]] == [c.regular_bytes for c in demo.layers]
        assert [layer["diff_id"] for layer in result["layers"]] == [c.diff_id for c in demo.layers]
        assert _comparable(result) == _comparable(embedded)


def test_demo_image_tells_the_story(demo: Case) -> None:
    result = bilge_analyze()
    # a token of GitHub's format in the history, as a build arg
    tokens = {m.group(0) for h in demo.history for m in TOKEN_RE.finditer(h)}
    assert len(tokens) == 1 and any("|1 GITHUB_ACCESS_TOKEN=ghp_" in h for h in demo.history)
    # the build tool: installed by one RUN, removed by a later one, still shipped
    install = next(i for i, h in enumerate(demo.history) if "dpkg -i" in h)
    remove = next(i for i, c in enumerate(demo.layers) if "usr/bin/.wh.make" in c.whiteouts)
    assert install < remove and "dpkg -r make" in demo.history[remove]
    make = next(w for w in result["wasted"] if w["path"] == "/usr/bin/make")
    assert (make["layer"], make["hidden_by_layer"]) == (install, remove)
    assert result["summary"]["reclaimable_bytes"] >= demo.layers[install].regular_bytes > 1_000_000
    # the needless copy: the whole zone database for an app that needs only UTC
    zoneinfo = sum(
        size for path, size in demo.walk["sizes"].items() if path.startswith("usr/share/zoneinfo/")
    )
    assert zoneinfo > 1_000_000
    assert DEMO.stat().st_size < 10 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# the README's install command: a built (non-editable) package must carry its data files


def test_wheel_ships_every_data_file_and_analyzes_the_demo(tmp_path: Path) -> None:
    """`pip install .` (not editable) then `bilge analyze`: every non-Python file of the package is in
    the wheel, and the demo analysis works from the installed copy alone."""
    # build from a clean copy: a stale build/ or *.egg-info in the checkout would mask a missing file
    source = tmp_path / "src-copy"
    shutil.copytree(
        REPO, source,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                      ".pytest_cache", ".ruff_cache", "work"),
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    wheel = next((tmp_path / "dist").glob("bilge-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    package = REPO / "src" / "bilge"
    data_files = [
        p.relative_to(package.parent).as_posix()
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert data_files, "expected package data (the demo image at least)"
    assert sorted(set(data_files) - names) == []
    site = tmp_path / "site"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import bilge; "
        "assert bilge.__file__.startswith(sys.argv[1]), bilge.__file__; "
        "from bilge.cli import main; main(['analyze', '--format', 'json', '--no-ci'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(site)], capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["image"]["tags"] == ["bilge-demo:latest"]
