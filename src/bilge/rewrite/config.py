"""The rewritten image config (history, rootfs diff_ids, created time), the config with secrets removed or
redacted (``scrub_config``, which squash and slim use too), and the result of a slim or scrub."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bilge.image import Image
from bilge.sink import WriteResult

if TYPE_CHECKING:
    from bilge.rewrite.squash import SquashCounts


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


REDACTED = "[redacted-by-bilge]"


MIN_GLOBAL = 6  # shorter secret values are replaced only where they were found, never everywhere


def _replace_strings(obj: Any, values: Sequence[str]) -> tuple[Any, int]:
    """``obj`` (JSON data) with every occurrence of each value replaced; and how many were."""
    if isinstance(obj, str):
        n = 0
        for value in values:
            if value in obj:
                n += obj.count(value)
                obj = obj.replace(value, REDACTED)
        return obj, n
    if isinstance(obj, list):
        total = 0
        out = []
        for item in obj:
            new, k = _replace_strings(item, values)
            out.append(new)
            total += k
        return out, total
    if isinstance(obj, dict):
        total = 0
        res = {}
        for key, item in obj.items():
            new, k = _replace_strings(item, values)
            res[key] = new
            total += k
        return res, total
    return obj, 0


def scrub_config(config: Mapping[str, Any], findings: Sequence[Any], *, env_mode: str = "remove",
                 label_mode: str = "remove") -> tuple[dict[str, Any], list[str]]:
    """The config without the secrets ``findings`` (from :mod:`bilge.secrets`) located in it.

    History lines keep their instruction with the value replaced by ``[redacted-by-bilge]``; Env
    variables and Labels holding a secret are removed (``remove``) or keep their name with the value
    redacted (``redact``). Every other occurrence of a found value anywhere in the config (the legacy
    ``container_config``, Cmd, Healthcheck ...) is redacted too. Returns (config, what was done).
    """
    cfg: dict[str, Any] = copy.deepcopy(dict(config))
    actions: list[str] = []
    env_keys = {f.location.key for f in findings if f.location.kind == "env" and f.location.key}
    label_keys = {f.location.key for f in findings if f.location.kind == "label" and f.location.key}
    for section in ("config", "container_config"):
        sub = cfg.get(section)
        if not isinstance(sub, dict):
            continue
        env = sub.get("Env")
        if isinstance(env, list) and env_keys:
            new_env = []
            for item in env:
                name, _, _value = str(item).partition("=")
                if name in env_keys:
                    if env_mode == "redact":
                        new_env.append(f"{name}={REDACTED}")
                    if section == "config":
                        actions.append(f"ENV {name}: {'redacted' if env_mode == 'redact' else 'removed'}")
                    continue
                new_env.append(item)
            sub["Env"] = new_env
        labels = sub.get("Labels")
        if isinstance(labels, dict) and label_keys:
            for name in sorted(label_keys & set(labels)):
                if label_mode == "redact":
                    labels[name] = REDACTED
                else:
                    del labels[name]
                if section == "config":
                    actions.append(f"LABEL {name}: {'redacted' if label_mode == 'redact' else 'removed'}")
    # history: each entry where something was found, then every long value everywhere
    history = cfg.get("history")
    if isinstance(history, list):
        for f in findings:
            idx = f.location.history_index
            if f.location.kind == "history" and idx is not None and 0 <= idx < len(history) and f.secret:
                entry = history[idx] or {}
                new, n = _replace_strings(entry, [f.secret])
                if n:
                    history[idx] = new
                    actions.append(f"history[{idx}] ({f.location.key or f.rule}): value redacted")
    long_values = sorted({f.secret for f in findings if f.secret and len(f.secret) >= MIN_GLOBAL},
                         key=len, reverse=True)
    cfg, n = _replace_strings(cfg, long_values)
    if n:
        actions.append(f"{n} further occurrence(s) in the config redacted")
    return cfg, actions


@dataclass(frozen=True)
class RewriteResult:
    """What scrub and slim did (squash has its own, richer :class:`SquashResult`)."""

    command: str
    reference: str
    output: WriteResult | None
    layers_in: int
    input_bytes: int
    output_bytes: int
    counts: SquashCounts
    details: Mapping[str, Any]
