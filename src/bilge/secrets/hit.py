"""The match a secret scanner reports (a leaf module: every scanner and the findings share it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    """One match in one text: offsets are into the scanned buffer."""

    rule_id: str
    title: str
    severity: str
    secret: str
    start: int
    end: int
    key: str | None = None
    reveal: int = 4
    fix: str = ""
    note: str = ""
    named: bool = False  # found by a name rule (less specific than a format rule)
