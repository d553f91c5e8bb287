"""cache-not-cleaned: a package manager leaves its cache in the layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bilge.dockerfile.rules.base import Analysis, Finding, Rule, finding, line_list, measured
from bilge.dockerfile.rules.common import CACHE_NAMES, cleanup_matches
from bilge.dockerfile.runmodel import glob_prefix
from bilge.units import human_bytes

if TYPE_CHECKING:
    from bilge.dockerfile.cost import Measure

RULE = Rule(
    "cache-not-cleaned", "low",
    "A package manager leaves its cache in the layer",
    "apt lists, apk indexes, pip/npm/yarn/gem/go/maven caches are written by the same RUN that installs and "
    "are useless at run time; left there, they are shipped with every pull.",
    "Clean in the same RUN (`rm -rf /var/lib/apt/lists/*`, `apk add --no-cache`, `pip install "
    "--no-cache-dir`, `npm cache clean --force`, `yarn cache clean`), or use a BuildKit cache mount "
    "(`RUN --mount=type=cache,target=/root/.cache/pip ...`).",
    ("size",),
)


_CACHE_FIX = {
    "apt-lists": "end the RUN with `&& rm -rf /var/lib/apt/lists/*` (or `RUN --mount=type=cache,target=/var/lib/apt,sharing=locked`)",
    "apk-cache": "use `apk add --no-cache` (and drop `apk update`)",
    "yum-cache": "end the RUN with `&& yum clean all && rm -rf /var/cache/yum`",
    "dnf-cache": "end the RUN with `&& dnf clean all`",
    "zypper-cache": "end the RUN with `&& zypper clean -a`",
    "pip-cache": "use `pip install --no-cache-dir` (or `ENV PIP_NO_CACHE_DIR=1`, or `--mount=type=cache,target=/root/.cache/pip`)",
    "uv-cache": "use `uv ... --no-cache` (or `ENV UV_NO_CACHE=1`, or a cache mount)",
    "poetry-cache": "use `poetry install --no-cache` or a cache mount",
    "npm-cache": "end the RUN with `&& npm cache clean --force` (or `--mount=type=cache,target=/root/.npm`)",
    "yarn-cache": "end the RUN with `&& yarn cache clean` (or `--mount=type=cache,target=/usr/local/share/.cache/yarn`)",
    "pnpm-store": "end the RUN with `&& pnpm store prune` or use a cache mount",
    "gem-cache": "end the RUN with `&& rm -rf /usr/local/bundle/cache/*.gem` (or under $BUNDLE_PATH)",
    "go-cache": "use `--mount=type=cache,target=/go/pkg/mod` and `--mount=type=cache,target=/root/.cache/go-build` (or `go clean -modcache -cache`)",
    "cargo-cache": "use cache mounts for the cargo registry, or build in a separate stage",
    "maven-repo": "use `--mount=type=cache,target=/root/.m2` or build in a separate stage",
    "gradle-cache": "use `--mount=type=cache,target=/root/.gradle` or build in a separate stage",
    "conda-pkgs": "end the RUN with `&& conda clean -afy`",
}


def check(an: Analysis) -> list[Finding]:
    out = []
    later_cleaned: dict[tuple[int, str], list[int]] = {}
    for later, matches in cleanup_matches(an):
        for _what, creator, how in matches:
            later_cleaned.setdefault((creator.index, how), []).append(later.line)
    stages = [an.df.stages[i] for i in sorted(an.content)]
    for stage in stages:
        for ins in stage.instructions:
            if ins.keyword != "RUN":
                continue
            facts = an.facts(ins)
            # a cache a later RUN removes gets both findings: this one (the fix goes here) and
            # cleanup-later-layer at the later RUN (issue 12)
            left = [c for c in facts.caches if c.cleaned is None]
            if not left:
                continue
            names = [CACHE_NAMES.get(c.kind, c.kind) for c in left]
            msg = f"{ins.short(60)} leaves the " + ", ".join(names) + f" in the layer of {an.role(stage)}"
            if ins.onbuild:
                msg += " (ONBUILD: in every image built FROM this one)"
            removed_at = sorted({n for c in left for n in later_cleaned.get((ins.index, c.kind), [])})
            if removed_at:
                msg += f"; the RUN at {line_list(removed_at)} removes it, which frees nothing"
            msg += "."
            fix = "; ".join(_CACHE_FIX.get(c.kind, RULE.fix) for c in left)
            fix = fix[0].upper() + fix[1:] + "."
            out.append(finding(an, RULE, ins, msg, fix=fix,
                                details={"caches": [c.kind for c in left],
                                         "paths": [p for c in left for p in c.paths]}))
    return out


def measure(f, an, image, m: Measure, layer, line_of_layer, report, show) -> Finding:
    if layer is None:
        return f
    paths = list(f.details.get("paths", []))
    b = m.bytes_under(layer, paths) if paths else 0
    where = ", ".join(sorted({glob_prefix(p) for p in paths})[:4])
    text = f"{human_bytes(b)} of cache under {where} in the layer of line {f.line}."
    return measured(f, text, b, cache_bytes=b)
