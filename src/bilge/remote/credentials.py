"""Where registry credentials come from, in this order (the first place that knows the registry wins):

1. ``--creds USER:PASS`` / ``--creds-file FILE`` (:class:`bilge.source.base.Credentials`);
2. ``$REGISTRY_AUTH_FILE`` if set, else ``$XDG_RUNTIME_DIR/containers/auth.json`` -- containers'
   (podman, skopeo, buildah) auth file;
3. ``$XDG_CONFIG_HOME/containers/auth.json`` (``~/.config/containers/auth.json``);
4. ``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json``): ``credHelpers`` for the registry, then
   ``auths``, then ``credsStore`` (the ``docker-credential-*`` programs);
5. none: anonymous.

In a file, ``auths`` keys match with or without ``https://`` and a ``/v1/`` suffix; auth.json keys may
name a repository (``registry.example/team``), the most specific wins. Docker Hub is
``https://index.docker.io/v1/`` in docker's files and ``docker.io`` in containers' files; both work.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bilge.errors import BilgeError
from bilge.reference import DOCKER_HUB

HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")
HUB_HELPER_URL = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class RegistryAuth:
    """What to authenticate with. ``origin`` says where it came from (a path or a flag), never the secret."""

    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token (docker login with an identity provider)
    registry_token: str = ""  # a ready bearer token
    origin: str = ""

    def __repr__(self) -> str:
        return f"RegistryAuth(username={self.username!r}, secret=<hidden>, origin={self.origin!r})"

    __str__ = __repr__

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)


ANONYMOUS = RegistryAuth(origin="anonymous")


def parse_creds(text: str, origin: str) -> RegistryAuth:
    """``USER:PASSWORD`` (the password may contain ':'; an empty user is allowed for tokens)."""
    user, sep, password = text.strip("\r\n").partition(":")
    if not sep:
        raise BilgeError(f"{origin}: expected USER:PASSWORD")
    return RegistryAuth(user, password, origin=origin)


def read_creds_file(path: str) -> RegistryAuth:
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except OSError as exc:
        raise BilgeError(f"--creds-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BilgeError(f"--creds-file {path}: not a text file") from None
    return parse_creds(first, f"--creds-file {path}")


def auth_files(env: Mapping[str, str] | None = None) -> list[Path]:
    """The credential files searched, in order (existing or not)."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    files: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    elif env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    files.append(Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "containers" / "auth.json")
    files.append(Path(env.get("DOCKER_CONFIG") or home / ".docker") / "config.json")
    return files


def find_auth(registry: str, repository: str, env: Mapping[str, str] | None = None) -> RegistryAuth:
    """The credentials for ``registry`` (as in a reference: ``docker.io``, ``host:port``), or ANONYMOUS."""
    for path in auth_files(env):
        if not path.is_file():
            continue
        doc = _load(path)
        found = _lookup(doc, registry, repository, str(path), env)
        if found is not None:
            return found
    return ANONYMOUS


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BilgeError(f"{path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BilgeError(f"{path}: not valid JSON (a registry credentials file)") from None
    if not isinstance(doc, dict):
        raise BilgeError(f"{path}: not a JSON object (a registry credentials file)")
    return doc


def _norm_key(key: str) -> str:
    key = key.strip()
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            if "/" in key:  # "https://host/v1/" style keys name only the host
                key = key.split("/", 1)[0]
            break
    return key.rstrip("/")


def _candidates(registry: str, repository: str) -> list[str]:
    """Keys to look for, most specific first."""
    if registry == DOCKER_HUB:
        hosts = ["docker.io", "index.docker.io", "registry-1.docker.io"]
    else:
        hosts = [registry]
    out = []
    parts = repository.split("/")
    for host in hosts:
        for n in range(len(parts), 0, -1):
            out.append(f"{host}/{'/'.join(parts[:n])}")
    out.extend(hosts)
    return out


def _lookup(doc: dict, registry: str, repository: str, origin: str,
            env: Mapping[str, str] | None) -> RegistryAuth | None:
    helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
    for key in ([*HUB_KEYS] if registry == DOCKER_HUB else [registry]):
        helper = helpers.get(key)
        if isinstance(helper, str) and helper:
            return _from_helper(helper, _helper_url(registry), f"{origin} (credHelpers: docker-credential-{helper})",
                                env)
    auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
    normalised: dict[str, dict] = {}
    for key, entry in auths.items():
        if isinstance(entry, dict):
            normalised.setdefault(_norm_key(str(key)), entry)
    for key in _candidates(registry, repository):
        entry = normalised.get(key)
        if entry is not None:
            found = _from_entry(entry, origin)
            if found is not None:
                return found
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        return _from_helper(store, _helper_url(registry), f"{origin} (credsStore: docker-credential-{store})", env)
    return None


def _helper_url(registry: str) -> str:
    return HUB_HELPER_URL if registry == DOCKER_HUB else registry


def _from_entry(entry: dict, origin: str) -> RegistryAuth | None:
    user = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    raw = entry.get("auth")
    if isinstance(raw, str) and raw:
        try:
            decoded = base64.b64decode(raw, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BilgeError(f"{origin}: an \"auth\" entry is not base64 of USER:PASSWORD") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise BilgeError(f"{origin}: an \"auth\" entry is not base64 of USER:PASSWORD")
    identity = str(entry.get("identitytoken") or "")
    registry_token = str(entry.get("registrytoken") or "")
    if not (user or password or identity or registry_token):
        return None
    return RegistryAuth(user, password, identity, registry_token, origin)


def _from_helper(name: str, server_url: str, origin: str, env: Mapping[str, str] | None) -> RegistryAuth | None:
    """``docker-credential-NAME get``: the server URL on stdin, JSON {Username, Secret} on stdout."""
    program = f"docker-credential-{name}"
    try:
        proc = subprocess.run([program, "get"], input=server_url, capture_output=True, text=True, timeout=60,
                              env=dict(env) if env is not None else None)
    except FileNotFoundError:
        raise BilgeError(f"{origin}: the credential helper {program} is not installed") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BilgeError(f"{origin}: the credential helper {program} failed ({exc.__class__.__name__})") from None
    if proc.returncode != 0:
        if "credentials not found" in (proc.stdout + proc.stderr).lower():
            return None
        # the helper's own output is not repeated: some helpers echo what they were given
        raise BilgeError(f"{origin}: the credential helper {program} exited with {proc.returncode}")
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise BilgeError(f"{origin}: the credential helper {program} did not print JSON") from None
    user, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
    if not secret:
        return None
    if user == "<token>":
        return RegistryAuth(identity_token=secret, origin=origin)
    return RegistryAuth(user, secret, origin=origin)
