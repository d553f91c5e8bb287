"""The rewritten image config: history, rootfs diff_ids and the created time of a rewrite."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from bilge.image import Image

# Config


def _created(image: Image, clamp: int | None) -> str | None:
    if clamp is not None:
        import datetime as _dt

        return _dt.datetime.fromtimestamp(clamp, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = image.config.get("created")
    return created if isinstance(created, str) else None


def rewrite_config(image: Image, start: int, entry: Mapping[str, Any], *, clamp: int | None = None,
                   redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The config of an image whose layers ``start..`` become one new layer described by ``entry``.

    Runtime settings (Env, Entrypoint, Cmd, WorkingDir, User, ExposedPorts, Volumes, Labels, ...)
    are kept as they are. History stays aligned with the layers: the base layers keep their entries;
    the squashed range's entries stay readable but become ``empty_layer``; ``entry`` (what bilge
    did) is the one entry that owns the new layer. ``rootfs`` is filled in by the sink.
    """
    cfg: dict[str, Any] = copy.deepcopy(dict(image.config))
    cfg.pop("rootfs", None)
    created = _created(image, clamp)
    history_in = [dict(h or {}) for h in (cfg.get("history") or [])]
    owners = {h.index: h.layer for h in image.history}
    # base layers the history does not describe (the first ones: see bilge.image.align_history)
    history: list[dict[str, Any]] = [
        {"created_by": "", "comment": f"bilge: layer {layer.index} had no history entry in the source image"}
        for layer in image.layers[:start] if layer.history is None
    ]
    first_range = min((h.index for h in image.history if h.layer is not None and h.layer >= start),
                      default=len(history_in))
    for i, h in enumerate(history_in):
        layer = owners.get(i)
        if layer is not None and layer < start:
            history.append(h)  # a base layer's entry, untouched
        elif layer is None and h.get("empty_layer") and i < first_range:
            history.append(h)  # ENV, LABEL ... before the squashed range
        else:
            h["empty_layer"] = True  # the squashed range: still readable, no longer owns a layer
            history.append(h)
    new_entry = dict(entry)
    if created is not None:
        new_entry.setdefault("created", created)
    history.append(new_entry)
    if redact is not None:
        history = [redact(h) for h in history]
    cfg["history"] = history
    if created is not None:
        cfg["created"] = created
    return cfg
