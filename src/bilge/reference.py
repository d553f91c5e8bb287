"""Parse image references: skopeo's transport names, bare paths sniffed by content, bare image names.

* ``docker-archive:PATH[:TAG|:@N]``, ``oci:DIR[:TAG]``, ``oci-archive:PATH[:TAG]``: local files;
* ``docker://[HOST[:PORT]/]REPO[:TAG|@DIGEST]``: a registry, with Docker's normalisation (``alpine``
  is ``docker.io/library/alpine:latest``);
* ``docker-daemon:NAME[:TAG]`` (or ``docker-daemon:sha256:ID``): the local Docker engine;
* a bare path that exists is sniffed; a bare ``NAME[:TAG]`` that is not a path is transport ``auto``
  (the engine if it has the image, else the registry -- see :mod:`bilge.source.auto`).
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import re
import tarfile
from dataclasses import dataclass

from bilge.errors import BilgeError, NotAnImageError
from bilge.tarstream import norm_member

TRANSPORTS = ("docker-archive", "oci-archive", "oci", "docker", "docker-daemon")

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


@dataclass(frozen=True)
class DockerName:
    """A registry image name: ``registry/repository`` plus a tag or a digest (a digest wins)."""

    registry: str  # "docker.io", "127.0.0.1:5000", "[::1]:5000"
    repository: str  # "library/alpine"
    tag: str | None = None
    digest: str | None = None

    @property
    def host(self) -> str:
        """Where the registry's API answers (Docker Hub's API is not at docker.io)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def hostname(self) -> str:
        host = self.registry
        if host.startswith("["):
            return host[1:host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def reference(self) -> str:
        """The manifest reference the API takes: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_reference(self, tag: str | None = None, digest: str | None = None) -> DockerName:
        return DockerName(self.registry, self.repository, tag, digest)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"


def is_loopback(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def parse_docker_name(text: str, *, what: str = "image name") -> DockerName:
    """Docker's reference grammar and normalisation (as skopeo's ``docker://`` and the engine apply it).

    ``alpine`` -> docker.io/library/alpine:latest; ``index.docker.io/x/y`` -> docker.io/x/y;
    ``127.0.0.1:5000/app@sha256:...`` keeps its registry and is pinned to the digest.
    """
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST.fullmatch(digest):
            raise BilgeError(f"invalid {what} {text!r}: {digest!r} is not a digest (expected sha256:<64 hex>)")
        algo, _, hexd = digest.partition(":")
        if algo == "sha256" and not re.fullmatch(r"[0-9a-f]{64}", hexd):
            raise BilgeError(f"invalid {what} {text!r}: a sha256 digest has 64 lowercase hex digits")
    tag = None
    head, sep, tail = rest.rpartition(":")
    if sep and "/" not in tail:
        rest, tag = head, tail
        if not _TAG.fullmatch(tag):
            raise BilgeError(f"invalid {what} {text!r}: {tag!r} is not a valid tag")
    first, slash, remainder = rest.partition("/")
    if slash and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first):
        registry, path = first, remainder
        if not _DOMAIN.fullmatch(registry):
            raise BilgeError(f"invalid {what} {text!r}: {registry!r} is not a registry host")
    else:
        registry, path = DOCKER_HUB, rest
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    if not path or not _PATH.fullmatch(path):
        raise BilgeError(f"invalid {what} {text!r}: repository names are lowercase letters, digits and "
                         "separators (., _, __, -), e.g. registry.example/team/app:1.0")
    if len(registry) + 1 + len(path) > 255:
        raise BilgeError(f"invalid {what} {text!r}: longer than 255 characters")
    return DockerName(registry, path, None if digest else (tag or "latest"), digest)


def looks_like_image_name(text: str) -> bool:
    """A bare argument that reads as ``NAME[:TAG|@DIGEST]`` and not as a file path."""
    if text.startswith(("/", "./", "../", "~")) or text.endswith((".tar", ".tgz", ".gz", ".zst", ".json")):
        return False
    try:
        parse_docker_name(text)
    except BilgeError:
        return False
    return True


@dataclass(frozen=True)
class Reference:
    transport: str  # docker-archive | oci-archive | oci | docker | docker-daemon | auto
    path: str  # file or directory (or registry name for docker://, image name for docker-daemon:)
    tag: str | None = None  # docker-archive: a RepoTag; oci/oci-archive: a ref name
    index: int | None = None  # docker-archive: ":@N"
    original: str = ""
    name: DockerName | None = None  # docker, docker-daemon (unless an image id), auto
    image_id: str | None = None  # docker-daemon:sha256:ID

    def __str__(self) -> str:
        return self.original or f"{self.transport}:{self.path}"


def _split_path(rest: str) -> tuple[str, str | None]:
    """Split "PATH[:SUFFIX]" where PATH itself may contain colons: the longest existing prefix wins."""
    if os.path.exists(rest) or ":" not in rest:
        return rest, None
    positions = [i for i, ch in enumerate(rest) if ch == ":"]
    for pos in positions:  # shortest existing path first leaves the longest suffix (tag may hold ':')
        if os.path.exists(rest[:pos]):
            return rest[:pos], rest[pos + 1 :] or None
    return rest, None


def parse(text: str) -> Reference:
    """Parse a reference string. Bare paths are sniffed (see :func:`sniff`)."""
    if not text:
        raise BilgeError("empty image reference")
    if text.startswith("docker://"):
        rest = text[len("docker://") :]
        return Reference("docker", rest, original=text, name=parse_docker_name(rest, what="docker:// reference"))
    transport, sep, rest = text.partition(":")
    if sep and transport in TRANSPORTS and transport != "docker":
        if transport == "docker-daemon":
            return _daemon_reference(rest, text)
        path, suffix = _split_path(rest)
        if transport == "docker-archive" and suffix and suffix.startswith("@"):
            try:
                return Reference(transport, path, index=int(suffix[1:]), original=text)
            except ValueError:
                raise BilgeError(f"invalid image index {suffix!r} in {text!r}: expected ':@N'") from None
        return Reference(transport, path, tag=suffix, original=text)
    path, suffix = _split_path(text)
    if not os.path.exists(path) and looks_like_image_name(text):
        return Reference("auto", text, original=text, name=parse_docker_name(text))
    if not os.path.exists(path):
        raise BilgeError(f"{text}: no such file or directory (and not a transport:reference such as "
                         "docker-archive:PATH, oci:DIR, oci-archive:PATH)")
    transport = sniff(path)
    index = None
    tag = suffix
    if suffix and suffix.startswith("@") and transport == "docker-archive":
        try:
            index, tag = int(suffix[1:]), None
        except ValueError:
            raise BilgeError(f"invalid image index {suffix!r} in {text!r}: expected ':@N'") from None
    return Reference(transport, path, tag=tag, index=index, original=text)


def _daemon_reference(rest: str, text: str) -> Reference:
    if not rest:
        raise BilgeError(f"invalid reference {text!r}: expected docker-daemon:NAME[:TAG] or docker-daemon:sha256:ID")
    hexd = rest.removeprefix("sha256:")
    if re.fullmatch(r"[0-9a-f]{64}", hexd) and (rest.startswith("sha256:") or len(rest) == 64):
        return Reference("docker-daemon", rest, original=text, image_id="sha256:" + hexd)
    name = parse_docker_name(rest, what="docker-daemon: reference")
    return Reference("docker-daemon", rest, original=text, name=name)


def sniff(path: str) -> str:
    """Decide the transport of a local path by looking at its content."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "index.json")) or os.path.exists(os.path.join(path, "oci-layout")):
            return "oci"
        if os.path.exists(os.path.join(path, "manifest.json")):
            raise NotAnImageError(f"{path}: an extracted docker save directory; pass the .tar file instead")
        raise NotAnImageError(f"{path}: directory is not an OCI image layout (no index.json)")
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        raise NotAnImageError(f"{path}: empty file, not an image")
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tf:
                names = {norm_member(m.name) for m in tf}
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise NotAnImageError(f"{path}: gzip file that is not a readable image archive ({exc})") from None
    else:
        try:
            with tarfile.open(path, mode="r:") as tf:
                names = {norm_member(n) for n in tf.getnames()}
        except tarfile.TarError:
            raise NotAnImageError(f"{path}: not a tar archive, OCI layout or docker save file") from None
    if "manifest.json" in names:
        return "docker-archive"
    if "index.json" in names:
        return "oci-archive"
    if not names:
        raise NotAnImageError(f"{path}: empty tar archive, not an image")
    raise NotAnImageError(f"{path}: tar archive without manifest.json or index.json — not an image "
                          "(a root filesystem tar? import it with `docker import` first)")

