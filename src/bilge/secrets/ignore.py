"""Silencing accepted findings, always with a reason.

``.bilgeignore`` (in the current directory, or ``--ignore-file``): one finding per line,
``<fingerprint> <reason>``; ``#`` starts a comment line. In the config::

    [[tool.bilge.secrets.ignore]]
    fingerprint = "3f0c9d1e2a4b5c6d7e8f"
    reason = "test fixture key, not used anywhere"

    [[tool.bilge.secrets.ignore]]
    rule = "private-key"
    path = "opt/app/tests/**"
    reason = "throw-away keys of the test suite"

An entry without a reason is an error: a silenced finding must say why it is acceptable.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bilge.errors import BilgeError
from bilge.secrets.model import Finding, Silenced
from bilge.secrets.rules import _glob_to_regex

_LINE = re.compile(r"^(?P<fp>[0-9a-fA-F]{20})(?:\s+#?\s*(?P<reason>\S.*?))?\s*$")


@dataclass(frozen=True)
class IgnoreEntry:
    reason: str
    source: str
    fingerprint: str | None = None
    rule: str | None = None
    path: str | None = None

    def matches(self, f: Finding) -> bool:
        if self.fingerprint is not None and f.fingerprint != self.fingerprint:
            return False
        if self.rule is not None and not fnmatch.fnmatchcase(f.rule, self.rule):
            return False
        if self.path is not None:
            where = f.location.path if f.location.kind == "file" else f"{f.location.kind}:{f.location.key or ''}"
            if where is None or not _glob_to_regex(self.path).match(where):
                return False
        return True


def parse_bilgeignore(text: str, source: str) -> list[IgnoreEntry]:
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise BilgeError(f"{source}:{n}: expected '<fingerprint> <reason>' (a 20-digit hex fingerprint)")
        if not m.group("reason"):
            raise BilgeError(f"{source}:{n}: silencing {m.group('fp')} needs a reason: '<fingerprint> <why it is accepted>'")
        out.append(IgnoreEntry(reason=m.group("reason"), source=f"{source}:{n}", fingerprint=m.group("fp").lower()))
    return out


def read_bilgeignore(path: Path) -> list[IgnoreEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BilgeError(f"cannot read {path}: {exc.strerror}") from None
    return parse_bilgeignore(text, str(path))


def from_config(items: Any, source: str) -> list[IgnoreEntry]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise BilgeError(f"{source}: [tool.bilge.secrets] ignore must be an array of tables ([[...ignore]])")
    out = []
    for i, item in enumerate(items, 1):
        where = f"{source}: ignore #{i}"
        if not isinstance(item, Mapping):
            raise BilgeError(f"{where}: expected a table")
        unknown = sorted(set(item) - {"fingerprint", "rule", "path", "reason"})
        if unknown:
            raise BilgeError(f"{where}: unknown key(s) {', '.join(unknown)}")
        reason = str(item.get("reason") or "").strip()
        if not reason:
            raise BilgeError(f"{where}: a silenced finding needs a reason")
        fp = item.get("fingerprint")
        if fp is not None and not re.fullmatch(r"[0-9a-fA-F]{20}", str(fp)):
            raise BilgeError(f"{where}: fingerprint must be 20 hex digits")
        if fp is None and item.get("rule") is None and item.get("path") is None:
            raise BilgeError(f"{where}: give a fingerprint, a rule or a path")
        out.append(IgnoreEntry(reason=reason, source=source, fingerprint=str(fp).lower() if fp else None,
                               rule=item.get("rule"), path=item.get("path")))
    return out


def apply(findings: Iterable[Finding], entries: list[IgnoreEntry]) -> tuple[list[Finding], list[Silenced]]:
    kept: list[Finding] = []
    silenced: list[Silenced] = []
    for f in findings:
        entry = next((e for e in entries if e.matches(f)), None)
        if entry is None:
            kept.append(f)
        else:
            silenced.append(Silenced(f, entry.reason, entry.source))
    return kept, silenced
