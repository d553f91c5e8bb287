"""Secret-detection rules: the built-in data file, merged with the user's configuration.

Rules are data (``bilge/data/secrets/rules.toml``, shipped as package data). The user's
``[tool.bilge.secrets]`` table can add rules (``[[tool.bilge.secrets.rule]]``, same fields), replace a
built-in rule by id, change severities (``severity = {jwt = "low"}``), disable rules (``disable = ["jwt"]``), or point at a
whole rules file of their own (``rules_file = "path.toml"``, which replaces the built-in format
rules and keeps the name rules unless it has its own ``[names]``).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from bilge.errors import BilgeError
from bilge.secrets.credfiles import FILE_RULES
from bilge.secrets.pathset import PathSet, alternation
from bilge.severity import SEVERITIES
from bilge.severity import check as check_severity
from bilge.severity import rank as severity_rank

VALIDATORS = frozenset({"pem", "jwt", "basic_auth", "placeholder", "github", "oauth_basic", "npm", "pypi"})


__all__ = ["SEVERITIES", "NameRules", "Rule", "Ruleset", "check_severity", "load_ruleset", "severity_rank"]


@dataclass(frozen=True)
class Rule:
    """A format rule: a keyword pre-filter plus a regex on the raw bytes."""

    id: str
    title: str
    severity: str
    keywords: tuple[bytes, ...]
    regex: re.Pattern[bytes]
    allow: tuple[re.Pattern[bytes], ...] = ()
    min_entropy: float = 0.0
    validate: str | None = None
    library_severity: str | None = None
    reveal: int = 4
    fix: str = ""
    description: str = ""


@dataclass(frozen=True)
class NameRules:
    """How secret-like names with literal values are recognised."""

    id: str
    title: str
    keywords: tuple[bytes, ...]
    words: frozenset[str]
    key_qualifiers: frozenset[str]
    auth_alone: frozenset[str]
    exclude_names: tuple[str, ...]
    credential_names: tuple[str, ...]
    placeholders: frozenset[str]
    placeholder_parts: tuple[str, ...]
    not_with_colon: frozenset[str] = frozenset()  # "passwd: files" (nsswitch.conf) is not an assignment
    severity: str | None = None  # the user's override; None: decided per finding
    enabled: bool = True

    def excluded(self, name: str) -> bool:
        # Password-Type, db.password.file: '-' and '.' separate words like '_'
        return _globs_rx(self.exclude_names).match(_norm(name)) is not None

    def always_credential(self, name: str) -> bool:
        return _globs_rx(self.credential_names).match(name.upper()) is not None


def _norm(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_")


@lru_cache(maxsize=64)
def _globs_rx(globs: tuple[str, ...]) -> re.Pattern[str]:
    """Case-insensitive name globs as one anchored regex (upper-cased names are matched)."""
    if not globs:
        return re.compile(r"(?!x)x")
    return re.compile("|".join(f"(?:{fnmatch.translate(g.upper())})" for g in globs))


@dataclass(frozen=True)
class PathClasses:
    """Path classes; each list of regexes is searched as one (``bilge.secrets.pathset``)."""

    library: PathSet | None
    config: PathSet | None
    code: PathSet | None
    exclude: re.Pattern[str] | None = None
    not_secrets: PathSet | None = None

    def is_library(self, path: str) -> bool:
        return self.library is not None and self.library.search(path) is not None

    def is_config(self, path: str) -> bool:
        return self.config is not None and self.config.search(path) is not None

    def is_excluded(self, path: str) -> bool:
        return self.exclude is not None and self.exclude.search(path) is not None

    def names_off(self, path: str) -> bool:
        """Files whose key/value pairs are known not to be secrets (``passwd: files`` in nsswitch.conf)."""
        return self.not_secrets is not None and self.not_secrets.search(path) is not None


@dataclass(frozen=True)
class Ruleset:
    rules: tuple[Rule, ...]
    names: NameRules
    paths: PathClasses
    by_id: Mapping[str, Rule] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()

    def get(self, rule_id: str) -> Rule | None:
        return self.by_id.get(rule_id)


# --------------------------------------------------------------------------------------------
# Parsing


def _compile(pattern: str, where: str) -> re.Pattern[bytes]:
    try:
        return re.compile(pattern.encode("utf-8"))
    except re.error as exc:
        raise BilgeError(f"{where}: invalid regex: {exc}") from None


def _compile_str(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BilgeError(f"{where}: invalid regex: {exc}") from None


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BilgeError(f"{where}: expected a list of strings")
    return list(value)


def parse_rule(obj: Mapping[str, Any], where: str, base: Rule | None = None) -> Rule:
    """One ``[[rule]]`` table; with ``base``, missing fields come from the rule it overrides."""
    if not isinstance(obj, Mapping):
        raise BilgeError(f"{where}: a rule must be a table")
    rule_id = obj.get("id")
    if not isinstance(rule_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,79}", rule_id):
        raise BilgeError(f"{where}: rule id must be lower-case letters, digits, '-', '_' or '.' (got {rule_id!r})")
    where = f"{where} (rule {rule_id})"
    known = {"id", "title", "severity", "keywords", "regex", "allow", "min_entropy", "validate",
             "library_severity", "reveal", "fix", "description"}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise BilgeError(f"{where}: unknown field(s) {', '.join(unknown)}")
    if base is None:
        for req in ("title", "severity", "regex", "keywords"):
            if req not in obj:
                raise BilgeError(f"{where}: missing required field {req!r}")
    title = str(obj.get("title", base.title if base else ""))
    severity = check_severity(obj["severity"], where) if "severity" in obj else base.severity  # type: ignore[union-attr]
    if "keywords" in obj:
        kws = _str_list(obj["keywords"], f"{where}: keywords")
        if not kws or any(not k for k in kws):
            raise BilgeError(f"{where}: keywords must be a non-empty list of non-empty strings")
        keywords = tuple(k.lower().encode("utf-8") for k in kws)
    else:
        keywords = base.keywords  # type: ignore[union-attr]
    regex = _compile(obj["regex"], where) if "regex" in obj else base.regex  # type: ignore[union-attr]
    allow = (tuple(_compile(a, f"{where}: allow") for a in _str_list(obj["allow"], f"{where}: allow"))
             if "allow" in obj else (base.allow if base else ()))
    validate = obj.get("validate", base.validate if base else None)
    if validate is not None and validate not in VALIDATORS:
        raise BilgeError(f"{where}: unknown validate {validate!r} (expected one of {', '.join(sorted(VALIDATORS))})")
    lib_sev = obj.get("library_severity", base.library_severity if base else None)
    if lib_sev is not None:
        lib_sev = check_severity(lib_sev, f"{where}: library_severity")
    try:
        min_entropy = float(obj.get("min_entropy", base.min_entropy if base else 0.0))
        reveal = int(obj.get("reveal", base.reveal if base else 4))
    except (TypeError, ValueError):
        raise BilgeError(f"{where}: min_entropy must be a number and reveal an integer") from None
    return Rule(
        id=rule_id,
        title=title,
        severity=severity,
        keywords=keywords,
        regex=regex,
        allow=allow,
        min_entropy=min_entropy,
        validate=validate,
        library_severity=lib_sev,
        reveal=max(0, min(reveal, 40)),
        fix=str(obj.get("fix", base.fix if base else "")),
        description=str(obj.get("description", base.description if base else "")),
    )


def parse_names(obj: Mapping[str, Any], where: str) -> NameRules:
    def low_set(key: str) -> frozenset[str]:
        return frozenset(v.lower() for v in _str_list(obj.get(key), f"{where}: {key}"))

    kws = [k.lower() for k in _str_list(obj.get("keywords"), f"{where}: keywords")]
    if not kws:
        raise BilgeError(f"{where}: keywords must not be empty")
    # every secret word must pass the pre-filter: add those no keyword already covers
    kws += sorted(w for w in low_set("words") if not any(k in w for k in kws))
    return NameRules(
        id=str(obj.get("id", "secret-assignment")),
        title=str(obj.get("title", "Secret-like variable assigned a literal value")),
        keywords=tuple(k.encode() for k in kws),
        words=low_set("words"),
        key_qualifiers=low_set("key_qualifiers"),
        auth_alone=low_set("auth_alone"),
        exclude_names=tuple(_str_list(obj.get("exclude_names"), f"{where}: exclude_names")),
        credential_names=tuple(_str_list(obj.get("credential_names"), f"{where}: credential_names")),
        placeholders=low_set("placeholders"),
        placeholder_parts=tuple(v.lower() for v in _str_list(obj.get("placeholder_parts"), f"{where}: placeholder_parts")),
        not_with_colon=low_set("not_with_colon"),
    )


def _join(patterns: list[str], where: str) -> PathSet | None:
    if not patterns:
        return None
    for p in patterns:
        _compile_str(p, where)  # a clear error naming the bad one
    re.compile(alternation(patterns))  # joined as before: the same errors
    return PathSet(patterns)


def parse_paths(obj: Mapping[str, Any], where: str, exclude: Iterable[str] = ()) -> PathClasses:
    def comp(key: str) -> PathSet | None:
        return _join(_str_list(obj.get(key), f"{where}: {key}"), f"{where}: {key}")

    globs = [_glob_to_regex(g).pattern for g in exclude]
    return PathClasses(
        library=comp("library"),
        config=comp("config"),
        code=comp("code"),
        exclude=re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None,
        not_secrets=comp("not_secrets"),
    )


def _glob_to_regex(glob: str) -> re.Pattern[str]:
    """A path glob (``**`` spans directories, ``*`` does not) against the normalised path."""
    g = glob.strip().lstrip("/")
    if g.startswith("./"):
        g = g[2:]
    out = []
    i = 0
    while i < len(g):
        c = g[i]
        if g.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if g.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    pattern = "".join(out)
    if g.endswith("/"):
        pattern += ".*"
    return re.compile(f"^{pattern}(?:/.*)?$")


def _read_rules_text(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BilgeError(f"{where}: invalid TOML: {exc}") from None


def builtin_rules_text() -> str:
    """The built-in rules file, ``bilge/data/secrets/rules.toml`` (package data)."""
    try:
        return resources.files("bilge").joinpath("data", "secrets", "rules.toml").read_text(encoding="utf-8")
    except OSError:
        raise BilgeError("the built-in secret rules are missing (bilge/data/secrets/rules.toml was not "
                         "installed with the package)") from None


@lru_cache(maxsize=1)
def _builtin_data() -> dict[str, Any]:
    return _read_rules_text(builtin_rules_text(), "built-in rules.toml")


def _parse_rule_list(items: Any, where: str, base: Mapping[str, Rule] | None = None) -> list[Rule]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise BilgeError(f"{where}: 'rule' must be an array of tables ([[rule]])")
    out = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        rid = item.get("id") if isinstance(item, Mapping) else None
        rule = parse_rule(item, f"{where} rule #{i + 1}", (base or {}).get(rid) if isinstance(rid, str) else None)
        if rule.id in seen:
            raise BilgeError(f"{where}: rule id {rule.id!r} defined twice")
        seen.add(rule.id)
        out.append(rule)
    return out


def load_ruleset(config: Mapping[str, Any] | None = None, config_dir: Path | None = None) -> Ruleset:
    """The built-in rules merged with ``config`` (the ``[tool.bilge.secrets]`` table)."""
    config = dict(config or {})
    known = {"rule", "rules_file", "disable", "severity", "ignore", "exclude_paths", "library_paths",
             "names", "scan_binaries", "max_file_size"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise BilgeError(f"[tool.bilge.secrets]: unknown key(s) {', '.join(unknown)}")
    data = _builtin_data()
    rules_list = _parse_rule_list(data.get("rule"), "built-in rules.toml")
    names_obj: Mapping[str, Any] = data.get("names", {})
    paths_obj: dict[str, Any] = dict(data.get("paths", {}))

    if config.get("rules_file"):
        path = Path(str(config["rules_file"]))
        if not path.is_absolute() and config_dir is not None:
            path = config_dir / path
        if not path.is_file():
            raise BilgeError(f"rules file not found: {path}")
        user = _read_rules_text(path.read_text(encoding="utf-8"), str(path))
        rules_list = _parse_rule_list(user.get("rule"), str(path))
        if "names" in user:
            names_obj = user["names"]
        if "paths" in user:
            paths_obj.update(user["paths"])

    by_id = {r.id: r for r in rules_list}
    order = [r.id for r in rules_list]
    for rule in _parse_rule_list(config.get("rule"), "[tool.bilge.secrets]", by_id):
        if rule.id not in by_id:
            order.append(rule.id)
        by_id[rule.id] = rule

    sev_over = config.get("severity") or {}
    if not isinstance(sev_over, Mapping):
        raise BilgeError("[tool.bilge.secrets] severity: expected a table of rule id = severity")
    names_sev: str | None = None
    for rid, sev in sev_over.items():
        sev = check_severity(sev, f"[tool.bilge.secrets] severity.{rid}")
        if rid in by_id:
            by_id[rid] = replace(by_id[rid], severity=sev)
        elif rid == str(names_obj.get("id", "secret-assignment")):
            names_sev = sev
        else:
            raise BilgeError(f"[tool.bilge.secrets] severity: no rule with id {rid!r}")

    disabled = set(_str_list(config.get("disable"), "[tool.bilge.secrets] disable"))
    name_id = str(names_obj.get("id", "secret-assignment"))
    file_ids = {r.id for r in FILE_RULES}
    for rid in disabled:
        if rid not in by_id and rid != name_id and rid not in file_ids:
            raise BilgeError(f"[tool.bilge.secrets] disable: no rule with id {rid!r}")
    rules = tuple(by_id[rid] for rid in order if rid not in disabled)

    names_over = config.get("names") or {}
    if not isinstance(names_over, Mapping):
        raise BilgeError("[tool.bilge.secrets] names: expected a table")
    merged_names = dict(names_obj)
    for key, value in names_over.items():
        if key.startswith("extra_"):
            base_key = key[len("extra_"):]
            merged_names[base_key] = list(merged_names.get(base_key, [])) + _str_list(value, f"names.{key}")
        else:
            merged_names[key] = value
    names = replace(parse_names(merged_names, "name rules"), severity=names_sev, enabled=name_id not in disabled)

    if "library_paths" in config:
        paths_obj["library"] = _str_list(config["library_paths"], "[tool.bilge.secrets] library_paths")
    paths = parse_paths(paths_obj, "paths", _str_list(config.get("exclude_paths"), "[tool.bilge.secrets] exclude_paths"))
    return Ruleset(rules=rules, names=names, paths=paths, by_id={r.id: r for r in rules},
                   disabled=frozenset(disabled))
