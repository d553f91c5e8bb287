"""CI gates for `bilge analyze`: dive's three rules (read from a `.dive-ci` file with dive's keys) and
bilge's own reclaimable-bytes rules (from `[tool.bilge]` in pyproject.toml or `.bilge.toml`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bilge.analyze import Analysis
from bilge.errors import BilgeError
from bilge.units import human_bytes

# dive's defaults when CI mode runs without a .dive-ci file
DIVE_DEFAULTS = {"lowestEfficiency": "0.9", "highestWastedBytes": "disabled", "highestUserWastedPercent": "0.1"}
BILGE_KEYS = {
    "lowest-efficiency": "lowestEfficiency",
    "highest-wasted-bytes": "highestWastedBytes",
    "highest-user-wasted-percent": "highestUserWastedPercent",
    "highest-reclaimable-bytes": "highest-reclaimable-bytes",
    "highest-reclaimable-percent": "highest-reclaimable-percent",
}
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3,
          "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}


@dataclass(frozen=True)
class RuleResult:
    rule: str
    status: str  # pass | fail | disabled
    threshold: str
    actual: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "status": self.status, "threshold": self.threshold, "actual": self.actual,
                "source": self.source}


def parse_bytes(value: Any) -> int:
    """Sizes as dive (go-humanize) reads them: ``20MB`` = 20,000,000, ``20MiB`` = 20,971,520, ``1000``."""
    if isinstance(value, int | float):
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise BilgeError(f"invalid size {value!r}: expected e.g. 20MB, 512KiB or a number of bytes")
    return int(float(m.group(1)) * _UNITS[unit])


def _parse_fraction(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BilgeError(f"{name}: invalid value {value!r}: expected a number such as 0.9") from None


def _parse_percent(value: Any, name: str) -> float:
    text = str(value).strip()
    try:
        return float(text[:-1]) if text.endswith("%") else float(text)
    except ValueError:
        raise BilgeError(f"{name}: invalid value {value!r}: expected a percentage such as 10 or '10%'") from None


def read_dive_ci(path: Path) -> dict[str, str]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BilgeError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    rules = data.get("rules") if isinstance(data, dict) else None
    if rules is None:
        return {}
    if not isinstance(rules, dict):
        raise BilgeError(f"{path}: 'rules' must be a mapping of dive rule names to thresholds")
    return {str(k): str(v) for k, v in rules.items()}


def load_rules(ci_config: str | None, bilge_config: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(rules, where each came from). A .dive-ci file wins over dive's defaults; bilge config over both."""
    rules = dict(DIVE_DEFAULTS)
    source = {k: "dive default" for k in rules}
    path = Path(ci_config) if ci_config else Path(".dive-ci")
    if ci_config and not path.is_file():
        raise BilgeError(f"CI config not found: {path}")
    if path.is_file():
        for key, value in read_dive_ci(path).items():
            if key not in DIVE_DEFAULTS:
                raise BilgeError(f"{path}: unknown dive rule {key!r} (expected one of {', '.join(DIVE_DEFAULTS)})")
            rules[key], source[key] = value, str(path)
    for key, canonical in BILGE_KEYS.items():
        if key in bilge_config:
            rules[canonical], source[canonical] = str(bilge_config[key]), "bilge config"
    return rules, source


def evaluate(a: Analysis, rules: dict[str, str], source: dict[str, str]) -> list[RuleResult]:
    results = []
    for rule, value in rules.items():
        src = source.get(rule, "")
        if str(value).strip().lower() == "disabled":
            results.append(RuleResult(rule, "disabled", "disabled", "", src))
            continue
        if rule == "lowestEfficiency":
            t = _parse_fraction(value, rule)
            results.append(RuleResult(rule, "fail" if a.dive.efficiency < t else "pass", f"{t:g}",
                                      f"{a.dive.efficiency:.4f}", src))
        elif rule == "highestWastedBytes":
            t = parse_bytes(value)
            results.append(RuleResult(rule, "fail" if a.dive.wasted_bytes > t else "pass", human_bytes(t),
                                      human_bytes(a.dive.wasted_bytes), src))
        elif rule == "highestUserWastedPercent":
            t = _parse_fraction(value, rule)
            results.append(RuleResult(rule, "fail" if a.dive.user_wasted_percent > t else "pass", f"{t:g}",
                                      f"{a.dive.user_wasted_percent:.4f}", src))
        elif rule == "highest-reclaimable-bytes":
            t = parse_bytes(value)
            results.append(RuleResult(rule, "fail" if a.summary.reclaimable_bytes > t else "pass",
                                      human_bytes(t), human_bytes(a.summary.reclaimable_bytes), src))
        elif rule == "highest-reclaimable-percent":
            t = _parse_percent(value, rule)
            results.append(RuleResult(rule, "fail" if a.summary.reclaimable_percent > t else "pass", f"{t:g}%",
                                      f"{a.summary.reclaimable_percent:.2f}%", src))
    return results


def ci_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
