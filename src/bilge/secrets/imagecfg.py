"""Scan what the image says about itself: history, Env, Labels, Entrypoint/Cmd, annotations.

Every ``history[].created_by`` is parsed for the form it takes:

* legacy builder: ``/bin/sh -c apt-get ...``, ``/bin/sh -c #(nop)  ENV A=b``, and the build-arg
  prefix ``|2 A=1 B=2 /bin/sh -c ...`` that the legacy builder writes on every RUN after an ARG;
* BuildKit: ``RUN /bin/sh -c ... # buildkit``, ``RUN |1 A=b /bin/sh -c ... # buildkit``,
  ``ENV A=b``, ``LABEL k=v``, ``ARG NAME`` / ``ARG NAME=default``;
* other builders (buildah, kaniko) write one of the two.

Build args, ENV, LABEL and ARG assignments are checked by name (secret-like name + literal
value) and every line is scanned as shell text with the format rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from bilge.history import ParsedHistory, parse_created_by
from bilge.image import Image
from bilge.secrets.findings import make_finding
from bilge.secrets.hit import Hit
from bilge.secrets.model import Finding, Location, ScanStats
from bilge.secrets.names import is_secret_name, value_kind
from bilge.secrets.rules import Ruleset
from bilge.secrets.textscan import NO_NAMES, SHELL, Scanner, dedupe

# ---------------------------------------------------------------------------------------------


def _name_hits(pairs: Iterable[tuple[str, str, int, int]], ruleset: Ruleset) -> list[Hit]:
    """Secret-like names with literal values (config context: always high)."""
    names = ruleset.names
    if not names.enabled:
        return []
    out = []
    for name, value, start, end in pairs:
        if not is_secret_name(name, names):
            continue
        kind = value_kind(value, names, name)
        if kind is None:
            continue
        severity = names.severity or "high"
        out.append(Hit(names.id, names.title, severity, value, start, end, key=name, reveal=3, named=True,
                       note="" if kind == "strong" else "short or human-chosen value"))
    return out


def _char_hits(scanner: Scanner, text: str, context: str) -> list[Hit]:
    """Scan text; convert byte offsets to character offsets (history lines may be non-ASCII)."""
    raw = text.encode("utf-8", "surrogateescape")
    hits = scanner.scan(raw, context)
    if len(raw) == len(text):
        return hits
    out = []
    for h in hits:
        s = len(raw[: h.start].decode("utf-8", "replace"))
        e = len(raw[: h.end].decode("utf-8", "replace"))
        out.append(replace(h, start=s, end=e))
    return out


_ENCLOSING = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)=[\"']?[^\s=\"']*\Z")


def _enclosing_name(text: str, start: int) -> str | None:
    m = _ENCLOSING.search(text, max(0, start - 200), start)
    return m.group(1) if m else None


def _origin(parsed: ParsedHistory, hit: Hit) -> str:
    if parsed.args_span and parsed.args_span[0] <= hit.start < parsed.args_span[1]:
        return "build-arg"
    return {"ENV": "env", "LABEL": "label", "ARG": "arg-default", "RUN": "run", "CMD": "config",
            "ENTRYPOINT": "config", "HEALTHCHECK": "config"}.get(parsed.instruction, "instruction")


def scan_history(image: Image, scanner: Scanner, stats: ScanStats) -> list[Finding]:
    """Findings in ``history[].created_by``: one per distinct secret, with every entry it is in."""
    ruleset = scanner.ruleset
    by_key: dict[tuple[str, str | None, str], Finding] = {}
    order: list[tuple[str, str | None, str]] = []
    for entry in image.history:
        stats.history_entries += 1
        text = entry.created_by or ""
        if not text.strip():
            continue
        parsed = parse_created_by(text)
        pairs = [(a.name, a.value, a.start, a.end) for a in parsed.build_args]
        pairs += [(a.name, a.value, a.start, a.end) for a in parsed.assignments]
        hits = dedupe(_name_hits(pairs, ruleset) + _char_hits(scanner, text, SHELL))
        layer_digest = None
        if entry.layer is not None and 0 <= entry.layer < len(image.layers):
            layer_digest = image.layers[entry.layer].digest
        for hit in hits:
            key = hit.key or _enclosing_name(text, hit.start)
            origin = _origin(parsed, hit)
            dedupe_key = (hit.rule_id, key, hit.secret)
            if dedupe_key in by_key:
                f = by_key[dedupe_key]
                if entry.index != f.location.history_index and entry.index not in f.also_in_history:
                    by_key[dedupe_key] = replace(f, also_in_history=(*f.also_in_history, entry.index))
                continue
            loc = Location(kind="history", layer=entry.layer, layer_digest=layer_digest,
                           history_index=entry.index, key=key, instruction=text)
            by_key[dedupe_key] = make_finding(hit, loc, origin)
            order.append(dedupe_key)
    return [by_key[k] for k in order]


def _scan_pairs(kind: str, pairs: Iterable[tuple[str, str]], scanner: Scanner, stats: ScanStats,
                scope: str | None = None) -> list[Finding]:
    out: list[Finding] = []
    for key, value in pairs:
        stats.config_values += 1
        value = str(value)
        hits = _name_hits([(key, value, 0, len(value))], scanner.ruleset)
        hits += _char_hits(scanner, value, NO_NAMES)
        for hit in dedupe(hits):
            loc = Location(kind=kind, key=key, instruction=scope)
            out.append(make_finding(hit, loc, kind))
    return out


def scan_config(image: Image, scanner: Scanner, stats: ScanStats) -> list[Finding]:
    """Findings in config Env, Labels, Entrypoint/Cmd/Healthcheck/OnBuild and annotations."""
    cfg: Mapping[str, Any] = image.container_config
    out: list[Finding] = []
    env_pairs = []
    for item in cfg.get("Env") or []:
        key, _, value = str(item).partition("=")
        env_pairs.append((key, value))
    out += _scan_pairs("env", env_pairs, scanner, stats)
    labels = cfg.get("Labels") or {}
    if isinstance(labels, Mapping):
        out += _scan_pairs("label", [(str(k), str(v)) for k, v in labels.items()], scanner, stats)
    fields: list[tuple[str, Any]] = [("Entrypoint", cfg.get("Entrypoint")), ("Cmd", cfg.get("Cmd")),
                                     ("OnBuild", cfg.get("OnBuild"))]
    health = cfg.get("Healthcheck")
    if isinstance(health, Mapping):
        fields.append(("Healthcheck", health.get("Test")))
    for name, value in fields:
        if not value:
            continue
        text = " ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        stats.config_values += 1
        for hit in _char_hits(scanner, text, SHELL):
            loc = Location(kind="config", key=name, instruction=text)
            out.append(make_finding(hit, loc, "config"))
    scopes: list[tuple[str, Mapping[str, str]]] = [("manifest", image.annotations), ("index", image.index_annotations)]
    scopes += [(f"layer {layer.index}", layer.annotations) for layer in image.layers]
    for scope, notes in scopes:
        if notes:
            out += _scan_pairs("annotation", [(str(k), str(v)) for k, v in notes.items()], scanner, stats, scope)
    return out
