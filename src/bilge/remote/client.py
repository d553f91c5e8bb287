"""A registry client (OCI distribution API v2) on httpx: scheme probing, authentication, redirects
that never carry credentials to another host, and retries with backoff.

* ``GET /v2/`` first: over HTTPS; plain HTTP (and unverified TLS) only with ``--tls-verify=false`` or
  for a loopback registry, as the Docker engine treats 127.0.0.0/8. Its 401 challenge says how to
  authenticate (:mod:`bilge.remote.auth`).
* Redirects are followed by hand (at most 10): the ``Authorization`` header goes only to the
  registry's own scheme://host:port -- a redirect to blob storage elsewhere gets none.
* A 429, a 5xx or a dropped or refused connection is retried ``retries`` times with exponential
  backoff (0.5 s, 1 s, 2 s ... at most 8 s; a ``Retry-After`` up to 30 s is honoured); then one line:
  ``bilge: error: REGISTRY: WHAT: REASON (after N attempts)``. A name that does not resolve is not
  retried.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urljoin, urlsplit

import httpx

from bilge import __version__
from bilge.errors import BilgeError, DigestMismatchError, ImageFormatError
from bilge.image import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from bilge.reference import DockerName, is_loopback
from bilge.remote.auth import Challenge, Token, parse_challenges, scope, token_from_response
from bilge.remote.credentials import ANONYMOUS, RegistryAuth, find_auth

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
MAX_MANIFEST = 8 << 20  # distribution's own limit is 4 MiB
DOCKER_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST,
                             f"{DOCKER_V1_SIGNED};q=0.1", f"{DOCKER_V1};q=0.1"])


class RegistryError(BilgeError):
    """The registry answered with an error, or could not be reached."""


class AuthError(RegistryError):
    """401/403: credentials missing, wrong, or without the needed rights."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _is_dns_failure(exc: BaseException) -> bool:
    if any(isinstance(e, socket.gaierror) for e in _chain(exc)):
        return True
    return bool(re.search(r"Name or service not known|name resolution|nodename nor servname|No address associated",
                          str(exc)))


def _is_tls_failure(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLError) for e in _chain(exc)) or "SSL" in str(exc)


def describe_transport_error(exc: BaseException) -> str:
    """A short, credential-free reason for a transport failure."""
    if _is_dns_failure(exc):
        return "host name does not resolve"
    if _is_tls_failure(exc):
        return "TLS handshake failed"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = str(exc).lower()
    if isinstance(exc, httpx.ConnectError) or "refused" in text:
        return "connection refused" if "refused" in text else "cannot connect"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "connection lost"
    return exc.__class__.__name__


def retriable(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError) and not _is_dns_failure(exc) and not _is_tls_failure(exc)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def registry_message(resp: httpx.Response) -> str:
    """``CODE: message`` from a registry's JSON error body (never headers, never the request)."""
    try:
        doc = resp.json()
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if errors and isinstance(errors[0], dict):
            code, msg = str(errors[0].get("code") or ""), str(errors[0].get("message") or "")
            return f"{code}: {msg}".strip(": ")[:200]
    except Exception:  # noqa: BLE001 - any body that is not the documented JSON
        pass
    return ""


class RegistryClient:
    """One registry and one repository (plus, for pushes, the repositories blobs are mounted from)."""

    def __init__(self, name: DockerName, *, auth: RegistryAuth | None = None, tls_verify: bool = True,
                 retries: int = 3, actions: tuple[str, ...] = ("pull",), retry_delay: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.name = name
        self.host = name.host
        self.insecure = not tls_verify or is_loopback(name.hostname)
        self.retries = max(0, retries)
        self.retry_delay = retry_delay
        self._sleep = sleep
        self.auth = auth if auth is not None else find_auth(name.registry, name.repository)
        self._http = httpx.Client(verify=not self.insecure, follow_redirects=False, trust_env=False,
                                  transport=transport,
                                  timeout=httpx.Timeout(120.0, connect=20.0),
                                  headers={"User-Agent": f"bilge/{__version__}"})
        self.base: str | None = None
        self._challenge: Challenge | None = None
        self._scopes: list[str] = [scope(name.repository, actions)]
        self._tokens: dict[tuple[str, ...], Token] = {}
        self._refresh_token = ""

    # -------------------------------------------------------------------------------------------
    # plumbing

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def label(self) -> str:
        return self.name.registry

    def add_scope(self, repository: str, actions: tuple[str, ...]) -> None:
        s = scope(repository, actions)
        if s not in self._scopes:
            self._scopes.append(s)

    def _backoff(self, attempt: int, resp: httpx.Response | None = None) -> float:
        if resp is not None:
            after = resp.headers.get("Retry-After", "")
            if after.isdigit():
                return min(float(after), 30.0)
        return min(8.0, self.retry_delay * (2 ** attempt)) * random.uniform(0.8, 1.2)

    def send_retrying(self, build: Callable[[], httpx.Request], what: str, *, retry: bool = True) -> httpx.Response:
        """Send (streaming) with the retry policy; raise RegistryError when the attempts run out."""
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                resp = self._http.send(build(), stream=True)
            except httpx.TransportError as exc:
                if not retriable(exc) or attempt == attempts - 1:
                    tail = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise RegistryError(f"{self.label}: {what}: {describe_transport_error(exc)}{tail}") from None
                self._sleep(self._backoff(attempt))
                continue
            if resp.status_code in RETRY_STATUSES and attempt < attempts - 1:
                delay = self._backoff(attempt, resp)
                resp.close()
                self._sleep(delay)
                continue
            if resp.status_code in RETRY_STATUSES and attempt:
                resp.extensions["bilge_attempts"] = attempt + 1
            return resp
        raise AssertionError("unreachable")

    # -------------------------------------------------------------------------------------------
    # ping and authentication

    def ping(self) -> None:
        """``GET /v2/``: pick the scheme (HTTPS; HTTP only when insecure is allowed) and the challenge."""
        if self.base is not None:
            return
        scheme = "https"
        if self.insecure:
            try:
                self._http.send(self._http.build_request("GET", f"https://{self.host}/v2/")).close()
            except httpx.TransportError as exc:
                if _is_tls_failure(exc) or isinstance(exc, httpx.RemoteProtocolError):
                    scheme = "http"  # a plain-HTTP registry (loopback, or --tls-verify=false)
        url = f"{scheme}://{self.host}/v2/"
        resp = self.send_retrying(lambda: self._http.build_request("GET", url), "GET /v2/")
        _read_small(resp)
        if resp.status_code == 200:
            self._challenge = None
        elif resp.status_code == 401:
            self._challenge = self._pick_challenge(resp)
        else:
            raise RegistryError(f"{self.label}: GET /v2/ answered {resp.status_code} {resp.reason_phrase}: "
                                "not an OCI distribution registry (or not at this address)")
        self.base = f"{scheme}://{self.host}"

    def _pick_challenge(self, resp: httpx.Response) -> Challenge | None:
        challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
        for wanted in ("bearer", "basic"):
            for ch in challenges:
                if ch.scheme == wanted:
                    return ch
        raise RegistryError(f"{self.label}: the registry asks for authentication it does not describe "
                            "(no Bearer or Basic challenge)")

    def _auth_header(self) -> str | None:
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            if self.auth.anonymous:
                return None
            raw = f"{self.auth.username}:{self.auth.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return "Bearer " + self._token()

    def _validate_realm(self, realm: str) -> None:
        parts = urlsplit(realm)
        if parts.scheme == "https" or (parts.scheme == "http" and self.insecure):
            return
        raise RegistryError(f"{self.label}: refusing the token realm {parts.scheme}://{parts.hostname or ''}: "
                            "a registry reached over verified TLS must name an https token server")

    def _token(self, force: bool = False) -> str:
        if self.auth.registry_token:
            return self.auth.registry_token
        key = tuple(self._scopes)
        tok = self._tokens.get(key)
        if tok is not None and tok.fresh and not force:
            return tok.value
        assert self._challenge is not None
        realm = self._challenge.realm
        if not realm:
            raise RegistryError(f"{self.label}: the Bearer challenge names no realm (token server)")
        self._validate_realm(realm)
        service = self._challenge.params.get("service", "")
        refresh = self._refresh_token or self.auth.identity_token
        what = "token request"
        if refresh:
            form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "bilge",
                    "scope": " ".join(self._scopes)}
            if service:
                form["service"] = service
            resp = self.send_retrying(lambda: self._http.build_request("POST", realm, data=form), what)
        else:
            params: list[tuple[str, str]] = [("service", service)] if service else []
            params += [("scope", s) for s in self._scopes]
            headers = {}
            if not self.auth.anonymous:
                params.append(("account", self.auth.username))
                raw = f"{self.auth.username}:{self.auth.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            resp = self.send_retrying(
                lambda: self._http.build_request("GET", realm, params=params, headers=headers), what)
        try:
            body = resp.read()
        finally:
            resp.close()
        if resp.status_code in (401, 403):
            raise AuthError(self._auth_failure(resp.status_code, resp.reason_phrase, "the token server"))
        if resp.status_code != 200:
            raise RegistryError(f"{self.label}: the token server {answered(resp)}")
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        tok, new_refresh = token_from_response(doc, self.label)
        if new_refresh:
            self._refresh_token = new_refresh
        self._tokens[key] = tok
        return tok.value

    def _auth_failure(self, status: int, reason: str, who: str, detail: str = "") -> str:
        extra = f" ({detail})" if detail else ""
        if self.auth.anonymous:
            return (f"{self.label}: {who} answered {status} {reason}: authentication required{extra}; "
                    "give --creds USER:PASS, --creds-file FILE or log in (docker login / skopeo login)")
        return (f"{self.label}: {who} answered {status} {reason}: the credentials from {self.auth.origin} "
                f"were refused{extra}")

    # -------------------------------------------------------------------------------------------
    # requests

    def url(self, path: str) -> str:
        self.ping()
        assert self.base is not None
        return self.base + path

    def request(self, method: str, path: str, what: str, *, headers: Mapping[str, str] | None = None,
                content: bytes | None = None, params: Mapping[str, str] | None = None,
                retry: bool = True) -> httpx.Response:
        """Send a request to the registry (path or absolute URL); the response is open (streaming)."""
        url = path if "://" in path else self.url(path)
        for auth_attempt in range(2):
            resp = self._send_following(method, url, what, headers or {}, content, params, retry)
            if resp.status_code != 401 or auth_attempt == 1 or self._challenge is None and self.auth.anonymous:
                break
            # a 401 from the registry itself: an expired token, or a scope we did not ask for
            if _origin(str(resp.url)) != _origin(self.base or url):
                break
            challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
            resp.close()
            bearer = next((c for c in challenges if c.scheme == "bearer"), None)
            if bearer is None or (self._challenge is not None and self._challenge.scheme != "bearer"):
                basic = next((c for c in challenges if c.scheme == "basic"), None)
                if self._challenge is None and basic is not None and not self.auth.anonymous:
                    self._challenge = basic  # /v2/ was open, this repository is not
                resp = self._send_following(method, url, what, headers or {}, content, params, retry)
                break
            self._challenge = Challenge("bearer", {**(self._challenge.params if self._challenge else {}),
                                                   **bearer.params})
            wanted = bearer.params.get("scope")
            if wanted:
                for s in wanted.split(" "):
                    if s not in self._scopes:
                        self._scopes.insert(0, s)
            self._token(force=True)
        if resp.status_code in (401, 403):
            detail = registry_message(_read_small(resp))
            raise AuthError(self._auth_failure(resp.status_code, resp.reason_phrase, what, detail))
        return resp

    def _send_following(self, method: str, url: str, what: str, headers: Mapping[str, str],
                        content: bytes | None, params: Mapping[str, str] | None, retry: bool) -> httpx.Response:
        own = _origin(self.base or url)
        auth = self._auth_header() if _origin(url) == own else None
        for _ in range(MAX_REDIRECTS + 1):
            hdrs = dict(headers)
            if auth is not None and _origin(url) == own:
                hdrs["Authorization"] = auth
            resp = self.send_retrying(
                lambda u=url, m=method, h=hdrs, c=content, p=params: self._http.build_request(
                    m, u, headers=h, content=c, params=p),
                what, retry=retry)
            if resp.status_code not in REDIRECTS or "Location" not in resp.headers:
                return resp
            location = resp.headers["Location"]
            resp.close()
            url = urljoin(url, location)
            params = None  # the Location is complete
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method not in ("GET", "HEAD")):
                method, content = "GET", None
        raise RegistryError(f"{self.label}: {what}: more than {MAX_REDIRECTS} redirects")

    def repo_path(self, kind: str, ref: str, repository: str | None = None) -> str:
        return f"/v2/{repository or self.name.repository}/{kind}/{ref}"

    # -------------------------------------------------------------------------------------------
    # reading

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest or index by tag or digest, its digest verified."""
        pinned = reference.startswith("sha256:")
        shown = f"{self.name.name}@{reference}" if pinned else str(self.name.with_reference(tag=reference))
        what = f"manifest {reference[:19] if pinned else reference}"
        resp = self.request("GET", self.repo_path("manifests", reference), what,
                            headers={"Accept": MANIFEST_ACCEPT, "Accept-Encoding": "identity"})
        if resp.status_code == 404:
            detail = registry_message(_read_small(resp)) or "404 Not Found"
            raise RegistryError(f"{shown}: no such {'manifest' if pinned else 'image'} in the registry ({detail})")
        if resp.status_code != 200:
            detail = registry_message(_read_small(resp))
            raise RegistryError(f"{self.label}: {what} {answered(resp)}"
                                + (f" ({detail})" if detail else ""))
        body = _read_limited(resp, MAX_MANIFEST, f"{self.label}: {what}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        computed = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and computed != reference:
            raise DigestMismatchError(f"{self.name.name}@{reference[:19]}: manifest digest mismatch: the registry "
                                      f"served a body that hashes to {computed}")
        header = resp.headers.get("Docker-Content-Digest", "")
        if header.startswith("sha256:") and header != computed:
            raise DigestMismatchError(f"{self.name}: manifest digest mismatch: the registry says {header}, "
                                      f"the body it served hashes to {computed}")
        return body, media_type, computed

    def open_blob(self, digest: str, offset: int = 0) -> httpx.Response:
        """A streaming response for a blob (from ``offset`` with a Range request); status 200 or 206."""
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        what = f"blob {digest[:19]}"
        resp = self.request("GET", self.repo_path("blobs", digest), what, headers=headers)
        if resp.status_code in (200, 206):
            return resp
        detail = registry_message(_read_small(resp))
        if resp.status_code == 404:
            raise RegistryError(f"{self.name.name}: blob {digest} is not in the registry "
                                f"({detail or '404 Not Found'})")
        raise RegistryError(f"{self.label}: {what} {answered(resp)}"
                            + (f" ({detail})" if detail else ""))

    def get_blob_bytes(self, digest: str, limit: int, what: str) -> bytes:
        resp = self.open_blob(digest)
        data = _read_limited(resp, limit, f"{self.label}: {what}")
        algo, _, expected = digest.partition(":")
        if algo != "sha256" or hashlib.sha256(data).hexdigest() != expected:
            raise DigestMismatchError(f"{self.name.name}: {what} {digest[:19]}: digest mismatch "
                                      f"(the registry served {len(data)} bytes that hash to something else)")
        return data


def answered(resp: httpx.Response) -> str:
    """``answered 503 Service Unavailable`` (+ ``(after N attempts)`` when it was retried)."""
    attempts = resp.extensions.get("bilge_attempts")
    return f"answered {resp.status_code} {resp.reason_phrase}" + (f" (after {attempts} attempts)" if attempts else "")


def _read_small(resp: httpx.Response) -> httpx.Response:
    try:
        resp.read()
    except httpx.HTTPError:
        pass
    finally:
        resp.close()
    return resp


def _read_limited(resp: httpx.Response, limit: int, what: str) -> bytes:
    parts, total = [], 0
    try:
        for chunk in ([resp.content] if resp.is_stream_consumed else resp.iter_raw()):
            total += len(chunk)
            if total > limit:
                raise ImageFormatError(f"{what}: larger than {limit >> 20} MiB, refused")
            parts.append(chunk)
    except httpx.TransportError as exc:
        raise RegistryError(f"{what}: {describe_transport_error(exc)}") from None
    finally:
        resp.close()
    return b"".join(parts)


def client_for(name: DockerName, *, credentials: RegistryAuth | None, tls_verify: bool, retries: int,
               actions: tuple[str, ...] = ("pull",)) -> RegistryClient:
    return RegistryClient(name, auth=credentials, tls_verify=tls_verify, retries=retries, actions=actions)


__all__ = ["ANONYMOUS", "AuthError", "MANIFEST_ACCEPT", "RegistryClient", "RegistryError", "client_for"]


# ---------------------------------------------------------------------------------------------
# writing (the registry sink)

MONOLITHIC_MAX = 16 << 20  # blobs up to this size go up in one PUT; larger ones in PATCH chunks
UPLOAD_CHUNK = 16 << 20


def _with_digest(location: str, digest: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}digest={digest}"


class Uploader:
    """Blob and manifest uploads for one repository (``client`` must have push scope)."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def has_blob(self, digest: str) -> bool:
        resp = self.client.request("HEAD", self.client.repo_path("blobs", digest), f"HEAD blob {digest[:19]}")
        _read_small(resp)
        return resp.status_code == 200

    def mount(self, digest: str, from_repository: str) -> bool:
        """Cross-repository mount (201) -- or False when the registry starts an upload instead (202)."""
        path = f"/v2/{self.client.name.repository}/blobs/uploads/"
        resp = self.client.request("POST", path, f"mount blob {digest[:19]}",
                                   params={"mount": digest, "from": from_repository})
        _read_small(resp)
        if resp.status_code == 201:
            return True
        if resp.status_code == 202 and resp.headers.get("Location"):
            # an upload session the registry opened instead; cancel it, we upload on our own terms
            cancel = self.client.request("DELETE", urljoin(self.client.url(path), resp.headers["Location"]),
                                         "cancel upload")
            _read_small(cancel)
        return False

    def _start(self, digest: str) -> str:
        path = f"/v2/{self.client.name.repository}/blobs/uploads/"
        resp = self.client.request("POST", path, f"upload blob {digest[:19]}")
        detail = registry_message(_read_small(resp))
        if resp.status_code != 202 or not resp.headers.get("Location"):
            raise RegistryError(f"{self.client.label}: starting the upload of {digest[:19]} answered "
                                f"{resp.status_code} {resp.reason_phrase}" + (f" ({detail})" if detail else ""))
        return urljoin(self.client.url(path), resp.headers["Location"])

    def upload(self, path: str, digest: str, size: int) -> str:
        """Upload the file ``path`` unless the registry has it; returns "exists", "monolithic" or "chunked"."""
        if self.has_blob(digest):
            return "exists"
        for attempt in range(self.client.retries + 1):
            try:
                return self._upload_once(path, digest, size)
            except RegistryError:
                if attempt == self.client.retries:
                    raise
                self.client._sleep(self.client._backoff(attempt))
        raise AssertionError("unreachable")

    def _upload_once(self, path: str, digest: str, size: int) -> str:
        location = self._start(digest)
        what = f"upload blob {digest[:19]}"
        headers = {"Content-Type": "application/octet-stream"}
        if size <= MONOLITHIC_MAX:
            with open(path, "rb") as fh:
                data = fh.read()
            resp = self.client.request("PUT", _with_digest(location, digest), what, content=data,
                                       headers={**headers, "Content-Length": str(len(data))}, retry=False)
            self._expect(resp, (201,), what)
            return "monolithic"
        offset = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(UPLOAD_CHUNK):
                end = offset + len(chunk) - 1
                resp = self.client.request("PATCH", location, what, content=chunk, retry=False,
                                           headers={**headers, "Content-Range": f"{offset}-{end}",
                                                    "Content-Length": str(len(chunk))})
                self._expect(resp, (202,), what)
                location = urljoin(location, resp.headers.get("Location") or location)
                offset = end + 1
        resp = self.client.request("PUT", _with_digest(location, digest), what, content=b"", retry=False,
                                   headers={"Content-Length": "0"})
        self._expect(resp, (201,), what)
        return "chunked"

    def _expect(self, resp: httpx.Response, ok: tuple[int, ...], what: str) -> None:
        detail = registry_message(_read_small(resp))
        if resp.status_code not in ok:
            raise RegistryError(f"{self.client.label}: {what} {answered(resp)}"
                                + (f" ({detail})" if detail else ""))

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag; return the digest the registry reports for it."""
        what = f"PUT manifest {reference}"
        resp = self.client.request("PUT", self.client.repo_path("manifests", reference), what, content=body,
                                   headers={"Content-Type": media_type})
        headers = resp.headers
        self._expect(resp, (200, 201), what)
        return headers.get("Docker-Content-Digest", "")
