"""The Docker engine's API (``DOCKER_HOST``, default ``unix:///var/run/docker.sock``), with httpx.

Plain httpx over the unix socket rather than the ``docker`` package: four endpoints are needed
(``/_ping``, ``/images/{name}/json``, ``/images/{name}/get``, ``/images/load``), each streamed, and
httpx is already a dependency. ``tcp://`` hosts work too (TLS with ``DOCKER_TLS_VERIFY`` and
``DOCKER_CERT_PATH``, as the docker CLI reads them); ``ssh://`` does not.
"""

from __future__ import annotations

import errno
import json
import os
import urllib.parse
from collections.abc import Iterator
from typing import Any, BinaryIO

import httpx

from bilge.errors import BilgeError

DEFAULT_HOST = "unix:///var/run/docker.sock"


class EngineError(BilgeError):
    """No engine answers, the socket is not ours to use, or the engine refused a request."""


class NoEngine(EngineError):
    """Nothing answers at DOCKER_HOST (a bare NAME:TAG then goes to the registry)."""


def _errno_in_chain(exc: BaseException) -> int | None:
    cur: BaseException | None = exc
    seen = set()
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno:
            return cur.errno
        cur = cur.__cause__ or cur.__context__
    return None


class Engine:
    def __init__(self, docker_host: str | None = None, timeout: float = 30.0) -> None:
        self.host = docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        verify: Any = True
        cert = None
        if self.host.startswith("unix://"):
            self.socket = self.host[len("unix://"):]
            transport = httpx.HTTPTransport(uds=self.socket)
            base = "http://docker"
        elif self.host.startswith("tcp://") or self.host.startswith("http://") or self.host.startswith("https://"):
            self.socket = ""
            rest = self.host.split("://", 1)[1]
            tls = self.host.startswith("https://") or bool(os.environ.get("DOCKER_TLS_VERIFY"))
            cert_path = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
            if tls:
                verify = os.path.join(cert_path, "ca.pem") if os.environ.get("DOCKER_TLS_VERIFY") else False
                if os.path.exists(os.path.join(cert_path, "cert.pem")):
                    cert = (os.path.join(cert_path, "cert.pem"), os.path.join(cert_path, "key.pem"))
            transport = httpx.HTTPTransport(verify=verify, cert=cert)
            base = f"{'https' if tls else 'http'}://{rest}"
        else:
            raise EngineError(f"DOCKER_HOST={self.host}: only unix:// and tcp:// engines are supported")
        self._http = httpx.Client(transport=transport, base_url=base, trust_env=False,
                                  timeout=httpx.Timeout(timeout, read=None))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, exc: httpx.TransportError) -> EngineError:
        code = _errno_in_chain(exc)
        where = self.host
        if code in (errno.EACCES, errno.EPERM):
            return EngineError(f"permission denied on {self.socket or where}: the Docker engine's socket is "
                               "not open to this user (add it to the 'docker' group, or run as root)")
        if code == errno.ENOENT:
            return NoEngine(f"no Docker engine answers at {where} (no such socket; is dockerd running? "
                            "set DOCKER_HOST to use another engine)")
        if code == errno.ECONNREFUSED:
            return NoEngine(f"no Docker engine answers at {where} (connection refused; is dockerd running?)")
        if isinstance(exc, httpx.TimeoutException):
            return NoEngine(f"no Docker engine answers at {where} (timed out)")
        return EngineError(f"Docker engine at {where}: {exc.__class__.__name__}")

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self._http.send(self._http.build_request(method, path, **kw), stream=True)
        except httpx.TransportError as exc:
            raise self._fail(exc) from None

    @staticmethod
    def _message(resp: httpx.Response) -> str:
        try:
            resp.read()
            doc = resp.json()
            return str(doc.get("message") or "")[:300] if isinstance(doc, dict) else ""
        except (ValueError, httpx.HTTPError):
            return ""
        finally:
            resp.close()

    def ping(self) -> None:
        resp = self._request("GET", "/_ping")
        msg = self._message(resp)
        if resp.status_code != 200:
            raise EngineError(f"the Docker engine at {self.host} answered {resp.status_code} to /_ping {msg}".strip())

    def inspect(self, name: str) -> dict[str, Any] | None:
        """``docker image inspect NAME`` (None when the engine does not have it)."""
        resp = self._request("GET", f"/images/{urllib.parse.quote(name, safe='')}/json")
        if resp.status_code == 404:
            resp.close()
            return None
        if resp.status_code != 200:
            raise EngineError(f"Docker engine: inspecting {name}: {resp.status_code} {self._message(resp)}")
        try:
            resp.read()
            doc = resp.json()
        finally:
            resp.close()
        if not isinstance(doc, dict):
            raise EngineError(f"Docker engine: inspecting {name}: not a JSON object")
        return doc

    def export(self, name: str) -> httpx.Response:
        """``docker save NAME``: the streaming response (a tar)."""
        resp = self._request("GET", f"/images/{urllib.parse.quote(name, safe='')}/get")
        if resp.status_code == 404:
            raise EngineError(f"{name}: no such image in the Docker engine ({self._message(resp)})")
        if resp.status_code != 200:
            raise EngineError(f"Docker engine: exporting {name}: {resp.status_code} {self._message(resp)}")
        return resp

    def load(self, tar: BinaryIO) -> list[str]:
        """``docker load``: stream ``tar`` to the engine; return the lines it reported (errors raise)."""

        def body() -> Iterator[bytes]:
            while chunk := tar.read(1 << 20):
                yield chunk

        resp = self._request("POST", "/images/load", params={"quiet": "1"}, content=body(),
                             headers={"Content-Type": "application/x-tar"})
        if resp.status_code != 200:
            raise EngineError(f"Docker engine: load: {resp.status_code} {self._message(resp)}")
        lines = []
        try:
            resp.read()
            for raw in resp.text.splitlines():
                if not raw.strip():
                    continue
                try:
                    doc = json.loads(raw)
                except ValueError:
                    continue
                if doc.get("error") or doc.get("errorDetail"):
                    raise EngineError(f"Docker engine: load failed: {str(doc.get('error'))[:300]}")
                if doc.get("stream"):
                    lines.append(str(doc["stream"]).strip())
        finally:
            resp.close()
        return lines
