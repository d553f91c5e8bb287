"""The one severity ladder shared by lint and secrets findings (a leaf module: only bilge.errors).

An unknown severity is an error everywhere: user input is checked with :func:`check` (one line,
exit 2), and :func:`rank` raises ``ValueError`` for a value that was never checked.
"""

from __future__ import annotations

from bilge.errors import BilgeError

SEVERITIES = ("critical", "high", "medium", "low", "info")
RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # info=0 ... critical=4


def rank(severity: str) -> int:
    """0 (info) to 4 (critical), case-insensitive; ``ValueError`` for anything else."""
    try:
        return RANK[severity.lower()]
    except KeyError:
        raise ValueError(f"unknown severity {severity!r} (one of {', '.join(SEVERITIES)})") from None


def at_or_above(severity: str, threshold: str) -> bool:
    return rank(severity) >= rank(threshold)


def check(value: str, where: str) -> str:
    """A severity from user input, lower-cased; one line (exit 2) when it is not on the ladder."""
    sev = str(value).lower()
    if sev not in RANK:
        raise BilgeError(f"{where}: unknown severity {value!r} (expected one of {', '.join(SEVERITIES)})")
    return sev
