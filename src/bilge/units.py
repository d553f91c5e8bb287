"""Units for people: sizes as docker and dive print them (a leaf module, no rich, nothing of bilge)."""

from __future__ import annotations


def human_bytes(n: int | float) -> str:
    """Decimal units, like docker and dive: 1.2 GB, 45.2 MB, 6.4 kB, 512 B."""
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            if unit == "B":
                return f"{sign}{int(n)} B"
            return f"{sign}{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
