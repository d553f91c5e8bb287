"""Mask secrets in text that bilge prints for other reasons (history lines in `analyze`, `lint`, `diff`).

`bilge secrets` has the full rule set; this module is the always-on safety net so that no command
prints a build-arg token or a well-known credential in clear: values of secret-looking build args /
ENV assignments, and strings of well-known credential formats, are replaced by a mask that keeps a
few leading characters and the length.
"""

from __future__ import annotations

import re

SECRET_NAME = re.compile(
    r"(?i)(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|PWD|PASS|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?|AUTH|"
    r"SECRET_?KEY|CLIENT_?SECRET)(?:$|_)")
NOT_SECRET_NAME = re.compile(r"(?i)(?:_VERSION|_SHA256|_SHA|_URL|_PATH|_FILE|_DIR|_ID)$|^GPG_KEYS?$")
KNOWN_FORMATS = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}|glpat-[A-Za-z0-9_\-]{20,}|"
    r"(?:AKIA|ASIA)[A-Z0-9]{16}|xox[abposr]-[A-Za-z0-9-]{10,}|sk_(?:live|test)_[A-Za-z0-9]{16,}|"
    r"npm_[A-Za-z0-9]{36}|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{20,}|hf_[A-Za-z0-9]{30,}|"
    r"sk-(?:proj-)?[A-Za-z0-9_\-]{20,}|dckr_pat_[A-Za-z0-9_\-]{20,}|rubygems_[a-f0-9]{48})")
URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
ASSIGNMENT = re.compile(r"(?P<key>\b[A-Za-z_][A-Za-z0-9_]*)=(?P<q>['\"]?)(?P<value>[^\s'\"]+)(?P=q)")


def mask(value: str, keep: int = 4) -> str:
    """``ghp_…(len=40)``: a few leading characters and the length, never the whole value."""
    keep = min(keep, max(0, len(value) // 4))
    return f"{value[:keep]}…(len={len(value)})"


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name)


def redact(text: str) -> str:
    """Mask secret-looking assignments, credentials in URLs and well-known token formats in ``text``."""
    if not text:
        return text

    def assignment(m: re.Match[str]) -> str:
        value = m.group("value")
        if is_secret_name(m.group("key")) and not value.startswith("$") and "…(len=" not in value:
            return f"{m.group('key')}={m.group('q')}{mask(m.group('value'))}{m.group('q')}"
        return m.group(0)

    text = KNOWN_FORMATS.sub(lambda m: mask(m.group(0)), text)
    text = URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{mask(m.group('pw'), 0)}@", text)
    return ASSIGNMENT.sub(assignment, text)
