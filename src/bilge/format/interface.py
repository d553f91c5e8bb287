"""The one small interface of bilge's output layer (after pip-audit's ``_format/interface.py``).

Analyses return data only (``bilge.analyze.Analysis``, ``bilge.deps.DepsResult``, lint findings, a secrets
``Report``, a rewrite result, a ``DiffResult``); everything that turns data into output lives in this package, one module
per kind of result, each offering the same three names:

- ``SCHEMA``: the id of its JSON document (``bilge.<command>/1``);
- ``to_json(result, ...) -> dict``: the JSON document (``to_sarif`` too where SARIF is offered:
  lint and secrets, through :mod:`bilge.format.sarif`);
- ``render_text(console, result, ...) -> None``: the human report, on a console from
  :func:`bilge.format.common.console` (colour only on a TTY, never with NO_COLOR).

:data:`RENDERERS` lists them; a new output format is one function in each module that offers it, a
new command's output one module here and one line in :data:`RENDERERS`. :func:`document` is how every
JSON or SARIF document is serialised.
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class Renderer(Protocol):
    """What every module of :data:`RENDERERS` provides."""

    SCHEMA: str

    def to_json(self, result: Any, /, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def render_text(self, console: Any, result: Any, /, *args: Any, **kwargs: Any) -> None: ...


RENDERERS: dict[str, str] = {
    "analyze": "bilge.format.analyze",
    "deps": "bilge.format.deps",
    "diff": "bilge.format.diff",
    "lint": "bilge.format.lint",
    "secrets": "bilge.format.secrets",
    "rewrite": "bilge.format.rewrite",
}

FORMATS = ("text", "json", "sarif")


def document(doc: dict[str, Any], *, ascii_only: bool = True) -> str:
    """A JSON/SARIF document as bilge prints it: indented by 2, one trailing newline."""
    return json.dumps(doc, indent=2, ensure_ascii=ascii_only) + "\n"
