"""Precision: judge a match's value and its surroundings, not only its name and shape (issue 12).

Three kinds of checks, each a small function so the rules engine can call it where it has the data:

* **Provider checksums.** GitHub's ``ghp_``/``gho_``/``ghu_``/``ghs_`` tokens end in six base-62
  digits of the CRC32 of the 30 random characters before them; a value of the right shape whose
  checksum does not match was never issued by GitHub (a documentation example, a made-up test
  value). The part before ``:x-oauth-basic`` is a credential when it is a classic OAuth token
  (40 hex digits) or a checksummed ``gh?_`` token.
* **Documentation.** A value in documentation (``/usr/share/doc``, ``/usr/share/man``, ``.ronn``,
  ``.md``, ``.rst``, ``.txt`` ...), in a template (``.tt``, ``.example``, ``.sample``) or on a
  commented line, that reads like a placeholder (``my…``, ``example``, ``generated``,
  ``changeme``, ``xxx``, ``<…>``, ``${…}``, repeated or sequential characters) is at most low,
  with the reason in the finding's note.
* **Known generated keys.** Debian's ``ssl-cert`` package generates a self-signed "snakeoil" key
  when it is installed: a real key, but a well-known stand-in; it is reported as medium.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bilge.secrets.model import Finding
    from bilge.secrets.textscan import Hit

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_GH_CHECKSUMMED = re.compile(r"gh[pousr]_([A-Za-z0-9]{30})([A-Za-z0-9]{6})")
_HEX40 = re.compile(r"[0-9a-f]{40}")


def base62(n: int, width: int = 6) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(width, "0")


def github_checksum_ok(token: str) -> bool | None:
    """True/False for a ``gh?_`` token of 36 characters after the prefix; None for other shapes."""
    m = _GH_CHECKSUMMED.fullmatch(token)
    if m is None:
        return None
    return base62(zlib.crc32(m.group(1).encode("ascii"))) == m.group(2)


def github_token(prefix: str, random_part: str) -> str:
    """A token of GitHub's format with a valid checksum (for tests and the demo image)."""
    if len(random_part) != 30:
        raise ValueError("GitHub tokens carry 30 random characters")
    return prefix + random_part + base62(zlib.crc32(random_part.encode("ascii")))


NOT_ISSUED = "checksum does not match: GitHub never issued this value (an example or a made-up token)"
NOT_OAUTH = "not a GitHub token's shape (classic OAuth tokens are 40 hex digits, newer ones gh?_ with a checksum)"


def judge_github(secret: str) -> tuple[str, str] | tuple[()]:
    """The validator of the ``gh?_`` rules: () keeps the match, ("low", why) demotes it."""
    ok = github_checksum_ok(secret)
    if ok is False:
        return ("low", NOT_ISSUED)
    return ()


def judge_oauth_basic(secret: str) -> tuple[str, str] | tuple[()]:
    """The validator of ``TOKEN:x-oauth-basic``: only a GitHub token's shape stays critical."""
    if _HEX40.fullmatch(secret):
        return ()
    ok = github_checksum_ok(secret)
    if ok is True:
        return ()
    return ("low", NOT_ISSUED if ok is False else NOT_OAUTH)


# ---------------------------------------------------------------------------------------------
# Documentation and placeholders

_DOC_PATH = re.compile(
    r"(?:^|/)usr/(?:local/)?share/(?:doc|man|info|gtk-doc|help)/"
    r"|(?:^|/)(?:docs?|man|examples?|samples?)/"
    r"|\.(?:ronn|md|markdown|rst|txt|adoc|asciidoc|texi|pod|[1-9][a-z]?|html?)$"
    r"|\.(?:tt|example|sample|template|tmpl|dist)$",
    re.I,
)
_COMMENT = re.compile(rb"[ \t]*(?:#|//|;|--(?![-A-Za-z])|%|\*(?!\*)|/\*|<!--|rem[ \t]|REM[ \t]|\.\\\")")
_PLACEHOLDER_WORDS = ("example", "generated", "changeme", "change_me", "change-me", "xxx", "your",
                      "sample", "dummy", "placeholder", "secret", "password", "token", "foo", "bar")
_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz")


def is_doc_path(path: str) -> bool:
    return _DOC_PATH.search(path) is not None


def on_comment_line(buf: bytes, start: int) -> bool:
    """Whether the line holding offset ``start`` of ``buf`` is a comment up to that offset."""
    if start > len(buf):
        return False
    bol = buf.rfind(b"\n", 0, start) + 1
    return _COMMENT.match(buf, bol, start) is not None


def placeholder_reason(value: str) -> str | None:
    """Why ``value`` reads like a placeholder (None when it does not)."""
    low = value.lower()
    if re.search(r"<[^<>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}", value):
        return "a template placeholder"
    for word in _PLACEHOLDER_WORDS:
        if word in low:
            return f"placeholder word {word!r}"
    if re.match(r"my[a-z]", low):
        return "placeholder word 'my…'"
    if re.search(r"(.)\1{3,}", low):
        return "repeated characters"
    for seq in _SEQUENCES:
        for i in range(len(seq) - 3):
            if seq[i:i + 4] in low:
                return "sequential characters"
    return None


def judge_file_hit(hit: Hit, path: str, buf: bytes) -> Hit:
    """A hit in a file, demoted when it is a placeholder in documentation or a known stand-in."""
    if hit.severity in ("low", "info"):
        return hit
    if path.endswith("ssl/private/ssl-cert-snakeoil.key") and hit.rule_id == "private-key":
        return _demote(hit, "medium", "Debian's ssl-cert snakeoil key, generated at package install: self-signed "
                                      "and the same in every container of this image; never serve real TLS with it")
    if hit.rule_id == "private-key":
        return hit  # elided keys in documentation are dropped by the pem validator already
    where = None
    if is_doc_path(path):
        where = "in documentation or a template"
    elif on_comment_line(buf, hit.start):
        where = "on a commented line"
    if where is None:
        return hit
    why = placeholder_reason(hit.secret)
    if why is None:
        return hit
    return _demote(hit, "low", f"documentation example: {why}, {where}")


def _demote(hit: Hit, severity: str, why: str) -> Hit:
    return replace(hit, severity=severity, note="; ".join(n for n in (hit.note, why) if n))


# ---------------------------------------------------------------------------------------------
# One finding per secret value in files


def fold_copies(findings: list[Finding]) -> list[Finding]:
    """File findings of one rule with the same value and state are one finding "also at" the others.

    The same documentation in two gem directories, the same key in two paths: reported once, the
    other paths listed in ``also_at``. Findings are expected sorted (the first one stays).
    """
    first: dict[tuple[str, str, bool], int] = {}
    out: list[Finding] = []
    extra: dict[int, list[str]] = {}
    for f in findings:
        if f.location.kind != "file" or not f.secret:
            out.append(f)
            continue
        key = (f.rule, f.secret, f.deleted)
        i = first.get(key)
        if i is None:
            first[key] = len(out)
            out.append(f)
        else:
            extra.setdefault(i, []).append(f"/{f.location.path}" + (f":{f.location.line}" if f.location.line else ""))
    for i, paths in extra.items():
        out[i] = replace(out[i], also_at=(*out[i].also_at, *paths))
    return out


# ---------------------------------------------------------------------------------------------
# Masking in other text


def specific(value: str) -> bool:
    """Long and specific enough to be a credential by itself: safe to mask wherever it appears."""
    from bilge.secrets.names import shannon_entropy

    return len(value) >= 12 and shannon_entropy(value) >= 3.0
