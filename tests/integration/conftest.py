"""Integration fixtures: a real Docker engine, a Debian base image, and the tools that measure
images independently of bilge (skopeo, umoci, buildah, a plain walk of an unpacked rootfs).

Every test under ``tests/integration/`` is marked ``integration``. When no engine answers, those
tests skip -- unless ``BILGE_REQUIRE_INTEGRATION=1`` (set by ``.ci/run``), where they FAIL, so CI
can never go green by skipping.

Helpers (plain functions, importable as ``from tests.integration.conftest import docker_build``,
and also reachable through the ``docker_engine`` fixture)::

    docker_build(context_dir, tag, *, buildkit=True, build_args=None, target=None, dockerfile=None) -> image id
    docker_save(tag, path) -> path                      # `docker save`, written atomically
    skopeo_copy(src_ref, dst_ref) -> None               # e.g. docker-archive:x.tar -> oci:dir:tag
    umoci_unpack(oci_dir, tag, bundle_dir) -> rootfs    # `umoci unpack`, returns bundle_dir/rootfs
    walk_rootfs(rootfs) -> dict                         # independent count of an unpacked rootfs
    buildah_bud(context_dir, tag, ...) / buildah_push(tag, dst_ref)

Session fixtures: ``docker_engine`` (alias ``docker``), ``base_image`` (``bilge-base:bookworm``,
built with mmdebstrap when missing -- the engine keeps it, so it is built once per machine) and
``built_image`` (a factory that builds a Dockerfile directory once per session under a tag derived
from its content, and saves it once).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.tools import argv, tool_env, which

BASE_IMAGE = "bilge-base:bookworm"
DEBIAN_MIRROR = os.environ.get("BILGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
REQUIRED = os.environ.get("BILGE_REQUIRE_INTEGRATION") == "1"
HERE = Path(__file__).resolve().parent


def _docker_client() -> str | None:
    """Debian's client first: BuildKit works through it (DOCKER_BUILDKIT=1) without buildx."""
    override = os.environ.get("BILGE_DOCKER")
    if override:
        return override
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    return shutil.which("docker")


DOCKER = _docker_client() or "docker"


def unavailable(reason: str) -> None:
    """Skip the test -- or fail it when integration tests are required (CI)."""
    if REQUIRED:
        pytest.fail(f"integration test required (BILGE_REQUIRE_INTEGRATION=1) but {reason}", pytrace=False)
    pytest.skip(reason)


@functools.cache
def engine_problem() -> str | None:
    """None when a Docker engine answers, else why not. Probed once per session."""
    if _docker_client() is None:
        return "no docker client installed"
    try:
        proc = subprocess.run(
            [DOCKER, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Docker engine reachable ({exc})"
    if proc.returncode != 0 or not proc.stdout.strip():
        detail = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine reachable ({detail})"
    return None


def require_tool(name: str) -> str:
    """Absolute path of a tool, or skip/fail the test when it is not installed."""
    path = which(name)
    if path is None:
        unavailable(f"{name} is not installed")
        raise AssertionError("unreachable")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ is an integration test."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("integration") is not None:
        problem = engine_problem()
        if problem is not None:
            unavailable(problem)


# --------------------------------------------------------------------------------------------
# running commands


class CommandError(RuntimeError):
    pass


def run(cmd: list[str], *, env: Mapping[str, str] | None = None, timeout: float = 1200, **kw: Any) -> str:
    """Run a command; return stdout; raise CommandError with the output tail on failure.

    Peers are named through :func:`tests.tools.argv` (``run([*argv("skopeo"), ...])``); the
    environment puts Debian's directories first on PATH (see tests/tools.py)."""
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=tool_env(env),
        **kw,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise CommandError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """A machine-wide lock (several test sessions may share the one engine)."""
    path = Path(tempfile.gettempdir()) / f"bilge-{name}.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


# --------------------------------------------------------------------------------------------
# docker


def image_id(ref: str) -> str | None:
    proc = subprocess.run(
        [DOCKER, "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True, timeout=60
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


_BUILT: dict[tuple[Any, ...], str] = {}


def docker_build(
    context_dir: str | os.PathLike[str],
    tag: str,
    *,
    buildkit: bool = True,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    dockerfile: str | os.PathLike[str] | None = None,
) -> str:
    """``docker build`` with Debian's client (BuildKit or the legacy builder); returns the image id.

    The same (context, tag, options) is built once per session; the engine's layer cache makes a
    rebuild in a later session cheap.
    """
    context = Path(context_dir).resolve()
    args = dict(build_args or {})
    key = (str(context), tag, buildkit, tuple(sorted(args.items())), target, str(dockerfile))
    if key in _BUILT and image_id(tag) == _BUILT[key]:
        return _BUILT[key]
    cmd = [DOCKER, "build", "-t", tag]
    if buildkit:
        cmd.append("--progress=plain")
    for name, value in args.items():
        cmd += ["--build-arg", f"{name}={value}"]
    if target:
        cmd += ["--target", target]
    if dockerfile:
        cmd += ["-f", str(dockerfile)]
    cmd.append(str(context))
    run(cmd, env={"DOCKER_BUILDKIT": "1" if buildkit else "0"})
    built = image_id(tag)
    if built is None:
        raise CommandError(f"docker build reported success but {tag} does not exist")
    _BUILT[key] = built
    return built


_SAVED: dict[str, str] = {}


def docker_save(tag: str, path: str | os.PathLike[str]) -> Path:
    """``docker save TAG`` to PATH (atomically). Skipped when PATH already holds this image id."""
    out = Path(path)
    current = image_id(tag)
    if current is None:
        raise CommandError(f"no such image: {tag}")
    if out.exists() and _SAVED.get(str(out.resolve())) == current:
        return out
    tmp = _atomic_target(out)
    try:
        run([DOCKER, "save", "-o", str(tmp), tag])
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    _SAVED[str(out.resolve())] = current
    return out


def docker_rmi(*refs: str) -> None:
    subprocess.run([DOCKER, "rmi", "--force", *refs], capture_output=True, timeout=300)


# --------------------------------------------------------------------------------------------
# skopeo, umoci, buildah


def _ref_path(ref: str) -> Path | None:
    """The local path of a docker-archive:/oci-archive: destination, without its :tag."""
    for transport in ("docker-archive:", "oci-archive:"):
        if ref.startswith(transport):
            rest = ref[len(transport) :]
            return Path(rest.split(":", 1)[0])
    return None


def skopeo_copy(src_ref: str, dst_ref: str, *extra: str) -> None:
    """``skopeo copy SRC DST`` (e.g. ``docker-archive:x.tar`` -> ``oci:dir:tag`` / ``oci-archive:y.tar:tag``).

    An existing archive destination is replaced (skopeo refuses to overwrite one).
    """
    require_tool("skopeo")
    dst_path = _ref_path(dst_ref)
    if dst_path is not None:
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        dst_path.unlink(missing_ok=True)
    if dst_ref.startswith("oci:"):
        Path(dst_ref[4:].split(":", 1)[0]).parent.mkdir(parents=True, exist_ok=True)
    run([*argv("skopeo"), "--insecure-policy", "copy", "--quiet", *extra, src_ref, dst_ref])


def skopeo_inspect(ref: str, *, raw: bool = False, config: bool = False) -> Any:
    require_tool("skopeo")
    cmd = [*argv("skopeo"), "inspect"]
    if raw:
        cmd.append("--raw")
    if config:
        cmd.append("--config")
    return json.loads(run([*cmd, ref]))


def umoci_unpack(oci_dir: str | os.PathLike[str], tag: str, bundle_dir: str | os.PathLike[str]) -> Path:
    """``umoci unpack --image OCI_DIR:TAG BUNDLE``; returns ``BUNDLE/rootfs``. BUNDLE must not exist."""
    require_tool("umoci")
    bundle = Path(bundle_dir)
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*argv("umoci"), "unpack"]
    if os.geteuid() != 0:
        cmd.append("--rootless")
    run([*cmd, "--image", f"{oci_dir}:{tag}", str(bundle)])
    return bundle / "rootfs"


def buildah_bud(
    context_dir: str | os.PathLike[str],
    tag: str,
    *,
    build_args: Mapping[str, str] | None = None,
    dockerfile: str | os.PathLike[str] | None = None,
    layers: bool = True,
) -> None:
    """``buildah bud`` (chroot isolation, no daemon), one layer per instruction unless ``layers=False``
    (buildah's default squashes everything after FROM into one layer).

    ``FROM bilge-base:bookworm`` resolves to buildah's own copy: call :func:`ensure_buildah_base` first.
    """
    require_tool("buildah")
    cmd = [*argv("buildah"), "bud", "--isolation", "chroot", f"--layers={str(layers).lower()}", "-t", tag]
    for name, value in (build_args or {}).items():
        cmd += ["--build-arg", f"{name}={value}"]
    if dockerfile:
        cmd += ["-f", str(dockerfile)]
    run([*cmd, str(context_dir)])


def ensure_buildah_base() -> None:
    """Copy the engine's ``bilge-base:bookworm`` into buildah's storage (when missing or stale)."""
    require_tool("buildah")
    wanted = ensure_base_image().removeprefix("sha256:")
    proc = subprocess.run(
        [*argv("buildah"), "inspect", "--type", "image", "--format", "{{.FromImageID}}", BASE_IMAGE],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 0 and proc.stdout.strip() == wanted:
        return
    with _lock("buildah-base"):
        run([*argv("buildah"), "pull", "--quiet", f"docker-daemon:{BASE_IMAGE}"])


def buildah_push(tag: str, dst_ref: str) -> None:
    """``buildah push TAG DST`` (e.g. ``oci-archive:x.tar:latest``)."""
    require_tool("buildah")
    dst_path = _ref_path(dst_ref)
    if dst_path is not None:
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        dst_path.unlink(missing_ok=True)
    run([*argv("buildah"), "push", "--quiet", tag, dst_ref])


def buildah_rmi(*tags: str) -> None:
    if which("buildah"):
        subprocess.run([*argv("buildah"), "rmi", "--force", *tags], env=tool_env(), capture_output=True, timeout=300)


# --------------------------------------------------------------------------------------------
# independent measurement


def walk_rootfs(rootfs: str | os.PathLike[str]) -> dict[str, Any]:
    """Walk an unpacked rootfs without following symlinks -- a measurement independent of bilge.

    Returns ``files`` (regular-file paths), ``bytes`` (their sizes, each inode counted once, so a
    hardlinked body counts once), ``inodes`` (distinct regular-file inodes), ``dirs``, ``symlinks``,
    ``other`` (devices, fifos, sockets) and ``sizes`` (``{"usr/bin/env": size}``, relative paths).
    """
    root = Path(rootfs)
    seen: set[tuple[int, int]] = set()
    result: dict[str, Any] = {"files": 0, "bytes": 0, "inodes": 0, "dirs": 0, "symlinks": 0, "other": 0}
    sizes: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in dirnames + filenames:
            st = os.lstat(base / name)
            rel = (base / name).relative_to(root).as_posix()
            if stat.S_ISREG(st.st_mode):
                result["files"] += 1
                sizes[rel] = st.st_size
                key = (st.st_dev, st.st_ino)
                if key not in seen:
                    seen.add(key)
                    result["inodes"] += 1
                    result["bytes"] += st.st_size
            elif stat.S_ISDIR(st.st_mode):
                result["dirs"] += 1
            elif stat.S_ISLNK(st.st_mode):
                result["symlinks"] += 1
            else:
                result["other"] += 1
    result["sizes"] = sizes
    return result


# --------------------------------------------------------------------------------------------
# fixtures


BASE_SCRIPT = HERE.parent / "base-image.sh"


@functools.cache
def ensure_base_image() -> str:
    """``bilge-base:bookworm`` (Debian 12 minbase set up as Debian's official images are), made by
    tests/base-image.sh unless the engine holds the script's current recipe of it."""
    with _lock("base-image"):
        try:
            run(["bash", str(BASE_SCRIPT)], env={"BILGE_DOCKER": DOCKER, "BILGE_DEBIAN_MIRROR": DEBIAN_MIRROR})
        except CommandError:
            require_tool("mmdebstrap")  # skip (or fail in CI) with the plain reason when it is missing
            raise
    found = image_id(BASE_IMAGE)
    if not found:
        raise CommandError(f"{BASE_IMAGE} was not created")
    return found


@pytest.fixture(scope="session")
def docker_engine() -> SimpleNamespace:
    """The one Docker engine on the machine (skips without one; fails when integration is required)."""
    problem = engine_problem()
    if problem is not None:
        unavailable(problem)
    return SimpleNamespace(
        client=DOCKER,
        build=docker_build,
        save=docker_save,
        rmi=docker_rmi,
        image_id=image_id,
        skopeo_copy=skopeo_copy,
        skopeo_inspect=skopeo_inspect,
        umoci_unpack=umoci_unpack,
        buildah_bud=buildah_bud,
        buildah_push=buildah_push,
        walk_rootfs=walk_rootfs,
        require_tool=require_tool,
    )


@pytest.fixture(scope="session")
def docker(docker_engine: SimpleNamespace) -> SimpleNamespace:
    """Alias of ``docker_engine``."""
    return docker_engine


@pytest.fixture(scope="session")
def base_image(docker_engine: SimpleNamespace) -> str:
    """The tag ``bilge-base:bookworm`` -- guaranteed to exist in the engine."""
    try:
        ensure_base_image()
    except CommandError as exc:
        unavailable(f"cannot build {BASE_IMAGE}: {exc}")
    return BASE_IMAGE


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    image_id: str
    archive: Path  # `docker save` output


def context_digest(context_dir: Path, *extra: object) -> str:
    """A short hash of every file in a build context plus the build options."""
    h = hashlib.sha256(repr(extra).encode())
    for path in sorted(p for p in context_dir.rglob("*") if p.is_file()):
        h.update(path.relative_to(context_dir).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def built_image(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., BuiltImage]]:
    """Factory: build a Dockerfile directory once per session and `docker save` it once.

    ``built_image(context_dir, name=None, *, buildkit=True, build_args=None, target=None)``; the tag
    is ``bilge-it-<name>:<content hash>``, so repeated sessions reuse the engine's cache.
    """
    cache: dict[tuple[Any, ...], BuiltImage] = {}
    out_dir = tmp_path_factory.mktemp("built-images")

    def build(
        context_dir: str | os.PathLike[str],
        name: str | None = None,
        *,
        buildkit: bool = True,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
    ) -> BuiltImage:
        context = Path(context_dir).resolve()
        args = dict(build_args or {})
        key = (str(context), buildkit, tuple(sorted(args.items())), target)
        if key in cache:
            return cache[key]
        label = (name or context.name).lower().replace("_", "-")
        digest = context_digest(context, buildkit, sorted(args.items()), target)
        tag = f"bilge-it-{label}:{digest}"
        built = docker_build(context, tag, buildkit=buildkit, build_args=args, target=target)
        archive = docker_save(tag, out_dir / f"{label}-{digest}.tar")
        cache[key] = BuiltImage(tag=tag, image_id=built, archive=archive)
        return cache[key]

    yield build
    # Build args are mostly fresh random tokens, so their tags would pile up run after run in the
    # engine (the engine's build cache keeps the layers shared with other images).
    if tags := [img.tag for key, img in cache.items() if key[2]]:
        docker_rmi(*tags)


@pytest.fixture(scope="session")
def seed_images(
    built_image: Callable[..., BuiltImage], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, BuiltImage]]:
    """The seed's app (tests/integration/seed.py) built once per session, with a fresh token:
    ``(token, {"single": legacy-built SINGLE, "multi": BuildKit-built MULTI})``. Read-only for the
    tests that share it (test_rewrite_seed.py, test_diff_engine.py): they run and read the images,
    never change them."""
    from tests.integration.seed import MULTI, SINGLE, token

    tok = token()
    out = {}
    for name, text, buildkit in (("single", SINGLE, False), ("multi", MULTI, True)):
        ctx = tmp_path_factory.mktemp(f"ctx-seed-{name}")
        (ctx / "Dockerfile").write_text(text)
        out[name] = built_image(ctx, f"seed-{name}", buildkit=buildkit, build_args={"GITHUB_ACCESS_TOKEN": tok})
    return tok, out
