"""User configuration: ``[tool.bilge]`` in pyproject.toml, or ``.bilge.toml`` (top level or [tool.bilge]).

Looked up from the given directory (default: the current one) upwards to the filesystem root; the
first file that has a bilge table wins. Sections: ``[tool.bilge]`` (analyze CI rules),
``[tool.bilge.lint]``, ``[tool.bilge.secrets]``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bilge.errors import BilgeError


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise BilgeError(f"{path}: invalid TOML: {exc}") from None


def find_config(start: str | Path | None = None) -> tuple[Path | None, dict[str, Any]]:
    """Return (path, the bilge table) of the nearest config file, or (None, {})."""
    here = Path(start or Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for directory in (here, *here.parents):
        dot = directory / ".bilge.toml"
        if dot.is_file():
            data = _read_toml(dot)
            return dot, data.get("tool", {}).get("bilge", data)
        py = directory / "pyproject.toml"
        if py.is_file():
            data = _read_toml(py)
            table = data.get("tool", {}).get("bilge")
            if table is not None:
                return py, table
    return None, {}


def load_config(explicit: str | Path | None = None, start: str | Path | None = None) -> dict[str, Any]:
    """The bilge table from an explicit file (``--config``) or the nearest one."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise BilgeError(f"config file not found: {path}")
        data = _read_toml(path)
        return data.get("tool", {}).get("bilge", data)
    return find_config(start)[1]
