"""The registry client's protocol logic against scripted servers (httpx.MockTransport): the Bearer
flow (challenge, token caching, refresh on 401), redirects that drop Authorization on another host,
retries with backoff, Range resume, and the credential search. The real registry is in
tests/integration/test_registry.py."""

from __future__ import annotations

import base64
import io
import json
import os

import httpx
import pytest

from bilge.errors import BilgeError
from bilge.reference import parse, parse_docker_name
from bilge.remote.auth import parse_challenges
from bilge.remote.blobs import BlobStream, ReadAhead
from bilge.remote.client import AuthError, RegistryClient, RegistryError
from bilge.remote.credentials import RegistryAuth, find_auth

BLOB = bytes(range(256)) * 64
DIGEST = "sha256:" + __import__("hashlib").sha256(BLOB).hexdigest()


def client(handler, **kw) -> RegistryClient:
    sleeps: list[float] = []
    c = RegistryClient(parse_docker_name("reg.example/team/app:1"), transport=httpx.MockTransport(handler),
                       sleep=sleeps.append, auth=kw.pop("auth", RegistryAuth(origin="anonymous")), **kw)
    c.sleeps = sleeps  # type: ignore[attr-defined]
    return c


def test_challenge_parsing():
    [b] = parse_challenges('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"')
    assert (b.scheme, b.realm, b.params["service"], b.params["scope"]) == (
        "bearer", "https://auth.example/token", "reg", "repository:a/b:pull")
    two = parse_challenges('Basic realm="x", Bearer realm="https://t/",service=s')
    assert [c.scheme for c in two] == ["basic", "bearer"] and two[1].params["service"] == "s"


def test_bearer_token_cached_and_refreshed_on_401():
    tokens: list[str] = []
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example":
            assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
            tokens.append(f"t{len(tokens)}")
            return httpx.Response(200, json={"token": tokens[-1], "expires_in": 300})
        auth = req.headers.get("Authorization", "")
        seen.append(auth)
        if req.url.path == "/v2/" or auth not in ("Bearer t0", "Bearer t1") or (auth == "Bearer t0" and len(seen) > 3):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/token",'
                                                                   'service="reg",scope="repository:team/app:pull"'})
        return httpx.Response(200, content=BLOB)

    c = client(handler, auth=RegistryAuth("u", "p", origin="--creds"))
    for _ in range(2):
        resp = c.open_blob(DIGEST)
        assert resp.read() == BLOB
    assert tokens == ["t0"]  # cached
    resp = c.open_blob(DIGEST)  # the registry now refuses t0: one new token, the request retried
    assert resp.read() == BLOB and tokens == ["t0", "t1"]


def test_wrong_credentials_are_one_clean_line():
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'},
                              json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})

    c = client(handler, auth=RegistryAuth("u", "hunter2-secret", origin="--creds"))
    with pytest.raises(AuthError) as err:
        c.get_manifest("1")
    msg = str(err.value)
    assert "401" in msg and "--creds" in msg and "hunter2" not in msg and "\n" not in msg


def test_redirect_to_another_host_drops_authorization():
    seen: dict[str, str | None] = {}

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "storage.example":
            seen["storage"] = req.headers.get("Authorization")
            return httpx.Response(200, content=BLOB)
        if req.url.path == "/v2/":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        seen["registry"] = req.headers.get("Authorization")
        return httpx.Response(307, headers={"Location": "https://storage.example/blob?sig=1"})

    c = client(handler, auth=RegistryAuth("u", "p", origin="--creds"))
    assert c.open_blob(DIGEST).read() == BLOB
    assert seen["registry"] and seen["registry"].startswith("Basic ") and seen["storage"] is None


def test_retries_with_backoff_then_one_line():
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.url.path)
        if req.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(503)

    c = client(handler, retries=3)
    with pytest.raises(RegistryError, match=r"503 Service Unavailable \(after 4 attempts\)"):
        c.get_manifest("1")
    assert calls.count("/v2/team/app/manifests/1") == 4
    assert len(c.sleeps) == 3 and c.sleeps[0] < c.sleeps[1] < c.sleeps[2]  # type: ignore[attr-defined]


def test_blob_stream_resumes_with_range_and_verifies():
    requests = []

    class Cut(httpx.SyncByteStream):
        def __iter__(self):
            yield BLOB[:5000]
            raise httpx.ReadError("connection reset")

    def handler(req: httpx.Request) -> httpx.Response:
        requests.append(req.headers.get("Range"))
        if req.url.path == "/v2/":
            return httpx.Response(200)
        rng = req.headers.get("Range")
        if rng is None:
            return httpx.Response(200, stream=Cut(), headers={"Content-Length": str(len(BLOB))})
        start = int(rng.split("=")[1].rstrip("-"))
        return httpx.Response(206, stream=httpx.ByteStream(BLOB[start:]),
                              headers={"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"})

    c = client(handler)
    stream = BlobStream(c, DIGEST, len(BLOB), verify=True)
    assert stream.read(len(BLOB) + 10) == BLOB and stream.read(10) == b""
    assert requests[-2:] == [None, "bytes=5000-"]


def test_manifest_digest_mismatch():
    body = json.dumps({"schemaVersion": 2}).encode()

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(200, content=body + b" ", headers={"Docker-Content-Digest": "sha256:" + "0" * 64})

    with pytest.raises(BilgeError, match="digest mismatch"):
        client(handler).get_manifest("1")
    with pytest.raises(BilgeError, match="digest mismatch"):
        client(handler).get_manifest("sha256:" + "1" * 64)


def test_plain_http_only_for_loopback_or_when_asked():
    assert RegistryClient(parse_docker_name("127.0.0.1:5000/a:1"), auth=RegistryAuth()).insecure
    assert not RegistryClient(parse_docker_name("reg.example/a:1"), auth=RegistryAuth()).insecure
    assert RegistryClient(parse_docker_name("reg.example/a:1"), auth=RegistryAuth(), tls_verify=False).insecure


# ---------------------------------------------------------------------------------------------
# references and the credential search


@pytest.mark.parametrize("text,expected", [
    ("alpine", "docker.io/library/alpine:latest"),
    ("index.docker.io/team/app:2", "docker.io/team/app:2"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("127.0.0.1:5000/a/b@sha256:" + "a" * 64, "127.0.0.1:5000/a/b@sha256:" + "a" * 64),
])
def test_docker_names(text, expected):
    assert str(parse_docker_name(text)) == expected
    assert parse("docker://" + text).name == parse_docker_name(text)


def test_bad_names_and_bare_names():
    for bad in ("team/UPPER:1", "app:bad tag", "app@sha256:short"):
        with pytest.raises(BilgeError):
            parse("docker://" + bad)
    assert parse("myapp:latest").transport == "auto"
    assert parse("docker-daemon:myapp").name == parse_docker_name("myapp")
    assert parse("docker-daemon:sha256:" + "c" * 64).image_id == "sha256:" + "c" * 64


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_credential_search_order(tmp_path):
    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    docker = tmp_path / ".docker" / "config.json"
    docker.parent.mkdir()
    docker.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": _b64("hub:1")},
                                            "reg.example": {"auth": _b64("docker:2")}}}))
    assert find_auth("docker.io", "library/alpine", env).username == "hub"
    assert find_auth("reg.example", "team/app", env).username == "docker"
    assert find_auth("other.example", "x", env).anonymous
    containers = tmp_path / "cfg" / "containers" / "auth.json"
    containers.parent.mkdir(parents=True)
    containers.write_text(json.dumps({"auths": {"reg.example/team": {"auth": _b64("team:3")},
                                                "reg.example": {"auth": _b64("registry:4")}}}))
    assert find_auth("reg.example", "team/app", env).username == "team"  # most specific, and before docker's
    assert find_auth("reg.example", "other/app", env).username == "registry"
    custom = tmp_path / "custom.json"
    custom.write_text(json.dumps({"auths": {"reg.example": {"username": "file", "password": "pw-Q9zX7"}}}))
    found = find_auth("reg.example", "team/app", {**env, "REGISTRY_AUTH_FILE": str(custom)})
    assert (found.username, found.origin) == ("file", str(custom))
    assert found.password == "pw-Q9zX7" and "Q9zX7" not in repr(found)  # (the path may hold any digit)


def test_credential_helper(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread url\necho "{\\"Username\\": \\"helper-$url\\", \\"Secret\\": \\"s\\"}"\n')
    helper.chmod(0o755)
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"credHelpers": {"reg.example": "fake"},
                                                                  "credsStore": "fake"}))
    env = {"HOME": str(tmp_path), "PATH": f"{bindir}:/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "c")}
    assert find_auth("reg.example", "a", env).username == "helper-reg.example"
    assert find_auth("docker.io", "library/a", env).username == "helper-https://index.docker.io/v1/"


# -- ReadAhead: the helper thread that overlaps network reads with decompression ----------------


class _Source(io.RawIOBase):
    """Hands out ``data`` in uneven pieces, then raises ``fail`` (if any) instead of the end."""

    def __init__(self, data: bytes, fail: BaseException | None = None) -> None:
        self.data, self.pos, self.fail, self.closed_by = data, 0, fail, None

    def read(self, n: int = -1) -> bytes:
        if self.pos >= len(self.data):
            if self.fail is not None:
                raise self.fail
            return b""
        piece = self.data[self.pos:self.pos + min(n, 7777)]
        self.pos += len(piece)
        return piece


def test_read_ahead_returns_the_stream_unchanged_whatever_the_read_sizes() -> None:

    data = os.urandom(300_000)
    r = ReadAhead(_Source(data), chunk=4096, depth=2)
    out, sizes = [], [1, 10, 5000, 100_000, 3, 4096]
    i = 0
    while piece := r.read(sizes[i % len(sizes)]):
        assert len(piece) <= sizes[i % len(sizes)]
        out.append(piece)
        i += 1
    assert b"".join(out) == data and r.read(10) == b""
    r.close()


def test_read_ahead_raises_the_producers_error_after_the_good_bytes() -> None:

    data = os.urandom(50_000)
    r = ReadAhead(_Source(data, RegistryError("registry: blob: connection reset at byte 50000")), chunk=1000)
    got = b""
    with pytest.raises(RegistryError, match="connection reset"):
        while True:
            got += r.read(999)
    assert got == data
    r.close()


def test_read_ahead_close_stops_a_producer_that_is_ahead() -> None:

    src = _Source(os.urandom(10_000_000))
    r = ReadAhead(src, chunk=1000, depth=2)
    assert len(r.read(10)) == 10
    r.close()
    assert not r._thread.is_alive() and src.pos < 10_000_000  # stopped, bounded read-ahead
