"""Registry authentication: ``WWW-Authenticate`` challenges and what to answer them with.

A registry answers ``GET /v2/`` with 200 (anonymous is fine), or 401 and a challenge: ``Basic
realm=...`` (send the credentials with every request) or ``Bearer realm=...,service=...`` (the token
flow: ask the realm for a token for ``repository:NAME:pull[,push]``, with the credentials as Basic
auth -- or, for an identity token, as an OAuth2 refresh-token grant -- then send ``Bearer TOKEN``).
Tokens are cached per scope set until they expire; a 401 on a request asks for a new one once
(an expired token, or a scope the challenge names that we did not have).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from bilge.errors import BilgeError

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|({_TOKEN}))\s*,?")
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" | "basic" | other, lower case
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (several challenges may share one header)."""
    out: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        m = _SCHEME.match(text, pos)
        if not m:
            break
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict[str, str] = {}
        while pos < len(text):
            pm = _PARAM.match(text, pos)
            if not pm:
                break
            value = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
            pos = pm.end()
        out.append(Challenge(scheme, params))
        while pos < len(text) and text[pos] in " ,":
            pos += 1
    return out


def scope(repository: str, actions: tuple[str, ...]) -> str:
    return f"repository:{repository}:{','.join(actions)}"


@dataclass
class Token:
    value: str
    expires: float  # time.monotonic() after which it is refreshed

    @property
    def fresh(self) -> bool:
        return time.monotonic() < self.expires


def token_from_response(doc: object, what: str) -> tuple[Token, str]:
    """(token, refresh token or "") from a token server's JSON answer."""
    if not isinstance(doc, dict):
        raise BilgeError(f"{what}: the token server did not answer with a JSON object")
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        raise BilgeError(f"{what}: the token server's answer holds no token")
    try:
        lifetime = max(int(doc.get("expires_in") or 60), 10)
    except (TypeError, ValueError):
        lifetime = 60
    refresh = doc.get("refresh_token")
    # refreshed a little early so that a token never expires in the middle of a request
    return Token(value, time.monotonic() + lifetime - 5), refresh if isinstance(refresh, str) else ""
