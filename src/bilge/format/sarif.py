"""SARIF 2.1.0 output shared by `bilge secrets` and `bilge lint` (GitHub code scanning accepts it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bilge import __version__

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_SECURITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "1.0"}


@dataclass(frozen=True)
class SarifRule:
    id: str
    title: str
    description: str
    severity: str  # critical | high | medium | low | info
    help: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SarifResult:
    rule_id: str
    severity: str
    message: str
    uri: str  # artifact location: a Dockerfile path, or an image-relative path / pseudo-URI
    start_line: int | None = None
    fingerprint: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


def level(severity: str) -> str:
    return _LEVELS.get(severity.lower(), "warning")


def sarif_log(tool: str, rules: Iterable[SarifRule], results: Iterable[SarifResult],
              information_uri: str = "https://github.com/bilge-tool/bilge") -> dict[str, Any]:
    """One SARIF 2.1.0 log with one run; rules listed once, results pointing at them by index."""
    rules = list(rules)
    index = {rule.id: i for i, rule in enumerate(rules)}
    sarif_rules = [
        {
            "id": r.id,
            "name": r.id,
            "shortDescription": {"text": r.title},
            "fullDescription": {"text": r.description or r.title},
            "help": {"text": r.help or r.description or r.title},
            "defaultConfiguration": {"level": level(r.severity)},
            "properties": {"tags": list(r.tags), "security-severity": _SECURITY.get(r.severity.lower(), "5.0")},
        }
        for r in rules
    ]
    sarif_results = []
    for res in results:
        region = {"startLine": max(1, res.start_line)} if res.start_line else None
        physical: dict[str, Any] = {"artifactLocation": {"uri": res.uri}}
        if region:
            physical["region"] = region
        item: dict[str, Any] = {
            "ruleId": res.rule_id,
            "level": level(res.severity),
            "message": {"text": res.message},
            "locations": [{"physicalLocation": physical}],
        }
        if res.rule_id in index:
            item["ruleIndex"] = index[res.rule_id]
        if res.fingerprint:
            item["partialFingerprints"] = {"bilge/v1": res.fingerprint}
        if res.properties:
            item["properties"] = dict(res.properties)
        sarif_results.append(item)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": tool,
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": information_uri,
                        "rules": sarif_rules,
                    }
                },
                "results": sarif_results,
            }
        ],
    }
