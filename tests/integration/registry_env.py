"""A real registry for the tests: Debian's ``docker-registry`` (distribution 2.8) started on
127.0.0.1:<free port> with its own config file, in one of three set-ups -- no auth, htpasswd (bcrypt,
made with ``htpasswd -Bbn``) or Bearer tokens from :class:`TokenServer` (RS256 JWTs whose signing
certificate is in ``x5c``; the registry's ``rootcertbundle`` points at it) -- plus :class:`FaultProxy`,
a small HTTP proxy in front of it that cuts a blob mid-way, tampers with a manifest or redirects blobs
to another host, and records every request it forwards. All traffic stays on loopback.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import http.server
import json
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.tools import argv, run_tool, tool_env

USER, PASSWORD = "bilge-user", "s3cret-Pa55word-xyz"
SERVICE, ISSUER = "bilge-test-registry", "bilge-test-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


# ---------------------------------------------------------------------------------------------
# token server


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """``GET /token?service=&scope=`` with Basic auth -> an RS256 JWT the registry trusts."""

    def __init__(self, workdir: Path, lifetime: int = 300) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bilge test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = workdir / "token.crt"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.lifetime = lifetime
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                outer._handle(self)

        self.server, self.port = _serve(Handler)
        self.realm = f"http://127.0.0.1:{self.port}/token"

    def _sign(self, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
        sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64(sig)}"

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
        auth = h.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if (u, p) != (USER, PASSWORD):
                self.requests.append({"query": query, "user": u, "ok": False})
                h.send_response(401)
                h.end_headers()
                return
            user = u
        scopes = query.get("scope", [])
        self.requests.append({"query": query, "user": user, "ok": True})
        access = []
        for sc in scopes:
            kind, _, rest = sc.partition(":")
            repo, _, actions = rest.rpartition(":")
            if kind == "repository" and user is not None:
                access.append({"type": "repository", "name": repo, "actions": actions.split(",")})
        now = int(time.time())
        token = self._sign({"iss": ISSUER, "sub": user or "", "aud": query.get("service", [""])[0],
                            "exp": now + self.lifetime, "nbf": now - 10, "iat": now,
                            "jti": secrets.token_hex(8), "access": access})
        body = json.dumps({"token": token, "access_token": token, "expires_in": self.lifetime}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
# the registry


@dataclass
class Registry:
    workdir: Path
    auth: str = "none"  # none | htpasswd | token
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    token: TokenServer | None = None
    log: Path | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = ["version: 0.1", "log:", "  level: warn", "  accesslog:", "    disabled: true", "storage:",
                 "  filesystem:", f"    rootdirectory: {data}", "  delete:", "    enabled: true",
                 "http:", f"  addr: 127.0.0.1:{self.port}", f"  secret: {secrets.token_hex(16)}"]
        if self.auth == "htpasswd":
            line = run_tool("htpasswd", "-Bbn", USER, PASSWORD).stdout.strip()
            (self.workdir / "htpasswd").write_text(line + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: bilge-test", f"    path: {self.workdir / 'htpasswd'}"]
        elif self.auth == "token":
            assert self.token is not None
            lines += ["auth:", "  token:", f"    realm: {self.token.realm}", f"    service: {SERVICE}",
                      f"    issuer: {ISSUER}", f"    rootcertbundle: {self.token.cert_path}"]
        return "\n".join(lines) + "\n"

    def start(self) -> Registry:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.auth == "token" and self.token is None:
            self.token = TokenServer(self.workdir)
        if not self.port:
            self.port = free_port()
        cfg = self.workdir / "config.yml"
        cfg.write_text(self.config())
        self.log = self.workdir / "registry.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*argv("docker-registry"), "serve", str(cfg)], stdout=log, stderr=log,
                                         env=tool_env())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not answer within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self.token is not None:
            self.token.close()

    def skopeo_creds(self) -> list[str]:
        return [] if self.auth == "none" else ["--creds", f"{USER}:{PASSWORD}"]

    def push(self, src_ref: str, repo_tag: str, *extra: str) -> str:
        """``skopeo copy SRC docker://HOST/REPO:TAG``; returns the docker:// reference."""
        ref = f"docker://{self.host}/{repo_tag}"
        run_tool("skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                 *[a.replace("--creds", "--dest-creds") for a in self.skopeo_creds()], *extra, src_ref, ref)
        return ref

    def inspect(self, ref: str, *, raw: bool = False) -> Any:
        args = ["inspect", "--tls-verify=false", *self.skopeo_creds()] + (["--raw"] if raw else [])
        return json.loads(run_tool("skopeo", *args, ref).stdout)


# ---------------------------------------------------------------------------------------------
# a fault-injecting proxy


@dataclass
class Faults:
    cut_blob: str | None = None  # digest: send half the body, then drop the connection
    cuts: int = 0  # how many times
    on_cut: Callable[[], None] | None = None  # e.g. stop the registry
    tamper_manifests: bool = False  # serve manifests with one byte added (headers unchanged)
    redirect_blobs_to: str | None = None  # "http://localhost:PORT": answer blob GETs with a 307 there
    status_script: dict[str, list[int]] = field(default_factory=dict)  # path substring -> statuses to answer first


class FaultProxy:
    """Forwards to the registry, recording every request; see :class:`Faults`."""

    def __init__(self, upstream_port: int, faults: Faults | None = None) -> None:
        self.upstream = upstream_port
        self.faults = faults or Faults()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                outer._forward(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

        self.server, self.port = _serve(Handler)
        self.host = f"127.0.0.1:{self.port}"

    def _forward(self, h: http.server.BaseHTTPRequestHandler) -> None:
        headers = {k: v for k, v in h.headers.items()}
        self.requests.append((h.command, h.path, headers))
        f = self.faults
        for key, statuses in f.status_script.items():
            if key in h.path and statuses:
                status = statuses.pop(0)
                h.send_response(status)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        if f.redirect_blobs_to and h.command == "GET" and "/blobs/sha256:" in h.path:
            h.send_response(307)
            h.send_header("Location", f"{f.redirect_blobs_to}{h.path}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=60)
        fwd = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
        fwd["Host"] = f"127.0.0.1:{self.upstream}"
        try:
            conn.request(h.command, h.path, body=body, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
        except OSError:
            h.send_response(502)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if f.tamper_manifests and h.command == "GET" and "/manifests/" in h.path and resp.status == 200:
            data = data + b" "
        cut = (f.cut_blob and f.cuts > 0 and h.command == "GET" and h.path.endswith(f.cut_blob)
               and resp.status in (200, 206) and len(data) > 2)
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            if k.lower() == "location" and v.startswith(f"http://127.0.0.1:{self.upstream}"):
                v = v.replace(f"127.0.0.1:{self.upstream}", self.host)
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        if cut:
            h.send_header("Connection", "close")
        h.end_headers()
        if h.command == "HEAD":
            return
        if cut:
            f.cuts -= 1
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            if f.on_cut is not None:
                f.on_cut()
            return
        h.wfile.write(data)

    def blob_requests(self, digest: str) -> list[dict[str, str]]:
        return [hd for m, p, hd in self.requests if m == "GET" and p.endswith(digest)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BlobHost:
    """"Another host" (``localhost`` instead of 127.0.0.1) serving blobs it fetches from the registry
    itself; records whether a request to it carried an Authorization header."""

    def __init__(self, registry: Registry) -> None:
        self.seen_authorization: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.seen_authorization.append(self.headers.get("Authorization"))
                conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=60)
                hdrs = {}
                if registry.auth == "htpasswd":
                    hdrs["Authorization"] = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                conn.request("GET", self.path, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server, self.port = _serve(Handler)
        self.url = f"http://localhost:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


__all__ = ["BlobHost", "FaultProxy", "Faults", "PASSWORD", "Registry", "TokenServer", "USER", "free_port",
           "os", "sha256_file"]
