"""The lint rules: Dockerfile mistakes that cost image size or leak secrets.

One module per rule (``secret_arg.py`` ...), each with its metadata (``RULE``: id, default severity,
title, rationale, fix -- the same text is in docs/lint.md and in the SARIF rule metadata), its
``check(analysis) -> list[Finding]`` (None when another rule's check reports it) and its
``measure(finding, ...)``, which attaches the bytes measured in the built image (None when there is
nothing to measure). :data:`REGISTRY` is the one list of them; a new rule is one module and one line
there. ``lint(df, options)`` returns findings in file order; ``bilge.dockerfile.cost`` attaches
measured bytes when the built image is given.

Which stage is shipped matters: the target stage (the last one, or ``--target``) and the stages it is
built FROM end up in the image, with their history and config. Other stages only lend files through
``COPY --from`` (files, not history). Size rules look only at what is shipped; secret rules look at
every stage, at a lower severity outside the shipped chain (a builder stage still leaks when it is pushed,
built with ``--target``, or its cache is exported).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from bilge.dockerfile.parse import Dockerfile
from bilge.dockerfile.rules import (
    broad_copy_from,
    cache_not_cleaned,
    cleanup_later_layer,
    no_dockerignore,
    recursive_chown,
    secret_arg,
    secret_copy,
    secret_in_layer,
    secret_literal,
    single_stage_build,
    toolchain_in_final_stage,
)
from bilge.dockerfile.rules.base import Analysis, Finding, LintOptions, Rule
from bilge.dockerfile.rules.broad_copy_from import broad_dir
from bilge.dockerfile.rules.common import toolchain_packages
from bilge.dockerfile.rules.toolchain_in_final_stage import toolchain_image
from bilge.severity import SEVERITIES
from bilge.severity import rank as severity_rank

# The registry: the order is the order of RULES (docs, SARIF) and of the checks.
REGISTRY = (
    secret_arg, secret_copy, secret_in_layer, secret_literal, cleanup_later_layer, cache_not_cleaned,
    toolchain_in_final_stage, broad_copy_from, single_stage_build, no_dockerignore, recursive_chown,
)

RULES: dict[str, Rule] = {m.RULE.id: m.RULE for m in REGISTRY}
MEASURES: dict[str, Callable[..., Finding]] = {m.RULE.id: m.measure for m in REGISTRY if m.measure is not None}

__all__ = [
    "MEASURES", "REGISTRY", "RULES", "SEVERITIES", "Analysis", "Finding", "LintOptions", "Rule", "apply_config",
    "broad_dir", "lint", "severity_rank", "toolchain_image", "toolchain_packages",
]


def lint(df: Dockerfile, opts: LintOptions | None = None) -> list[Finding]:
    opts = opts or LintOptions()
    an = Analysis(df, opts)
    findings: list[Finding] = []
    for module in REGISTRY:
        if module.check is not None:
            findings.extend(module.check(an))
    out = []
    by_index = {i.line: i for i in df.instructions}
    for f in findings:
        ins = by_index.get(f.line)
        if ins is not None and df.ignored(ins, f.rule):
            continue
        if f.rule in df.file_ignores or "all" in df.file_ignores:
            continue
        out.append(f)
    out.sort(key=lambda f: (f.line, f.rule))
    return out


def apply_config(findings: list[Finding], disable: Iterable[str] = (), severity: Mapping[str, str] | None = None,
                 ) -> list[Finding]:
    off = {d.strip().lower() for d in disable}
    sev = {k.lower(): v.lower() for k, v in (severity or {}).items()}
    out = []
    for f in findings:
        if f.rule in off:
            continue
        if f.rule in sev:
            f = replace(f, severity=sev[f.rule])
        out.append(f)
    return out
