"""``bilge secrets``: every credential an image still carries.

Library use::

    from bilge.source import open_image
    from bilge.secrets import scan_source, load_ruleset

    with open_image("docker-archive:app.tar") as src:
        findings, stats = scan_source(src, load_ruleset())

The image config (history, Env, Labels, Entrypoint/Cmd, annotations) is scanned from the
:class:`bilge.image.Image`; files are scanned in the same single pass over the layers that every
other analysis uses (``bilge.fs.walk_image`` with a visitor), deleted and overwritten versions
included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bilge.image import Image
from bilge.secrets.ignore import IgnoreEntry, apply
from bilge.secrets.imagecfg import scan_config, scan_history
from bilge.secrets.model import Finding, Location, Report, ScanStats, Silenced
from bilge.secrets.precision import fold_copies
from bilge.secrets.rules import SEVERITIES, Ruleset, load_ruleset, severity_rank
from bilge.secrets.scanner import FileVisitor, file_findings
from bilge.secrets.textscan import Scanner

if TYPE_CHECKING:
    from bilge.source.base import ImageSource

__all__ = [
    "SEVERITIES", "Finding", "FileVisitor", "Location", "Report", "Ruleset", "ScanStats", "Scanner",
    "Silenced", "build_report", "load_ruleset", "scan_image_config", "scan_source", "sort_findings",
]

_KIND_ORDER = {"history": 0, "env": 1, "label": 2, "config": 3, "annotation": 4, "file": 5}


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    def key(f: Finding) -> tuple[Any, ...]:
        loc = f.location
        return (-f.rank, _KIND_ORDER.get(loc.kind, 9), loc.history_index if loc.history_index is not None else -1,
                loc.layer if loc.layer is not None else -1, loc.path or "", loc.line or 0, loc.key or "", f.rule)
    return sorted(findings, key=key)


def scan_image_config(image: Image, scanner: Scanner, stats: ScanStats | None = None) -> list[Finding]:
    """Findings in history, Env, Labels, Entrypoint/Cmd and annotations (no layer is read)."""
    stats = stats if stats is not None else ScanStats()
    return merge_config_into_history(scan_history(image, scanner, stats), scan_config(image, scanner, stats))


def merge_config_into_history(history: list[Finding], config: list[Finding]) -> list[Finding]:
    """An ENV/LABEL secret in the config and in the history line that set it is one finding.

    The config finding stays (it is what every container gets); the history entries that set the
    same key to the same value are listed in its ``also_in_history``. History findings with other
    values (an ENV overridden later, a build arg) stay as they are.
    """
    from dataclasses import replace

    keyed = {(f.location.kind, f.location.key, f.rule, f.secret): i for i, f in enumerate(config)
             if f.location.kind in ("env", "label")}
    out_config = list(config)
    kept: list[Finding] = []
    for f in history:
        instr = (f.location.instruction or "").split("#(nop)")[-1].split(None, 1)
        kind = {"ENV": "env", "LABEL": "label"}.get(instr[0] if instr else "")
        i = keyed.get((kind, f.location.key, f.rule, f.secret)) if kind else None
        if i is None:
            kept.append(f)
            continue
        c = out_config[i]
        indexes = sorted({*c.also_in_history, f.location.history_index, *f.also_in_history} - {None})
        out_config[i] = replace(c, also_in_history=tuple(indexes))
    return kept + out_config


def scan_source(src: ImageSource, ruleset: Ruleset | None = None, *, files: bool = True, scan_binaries: bool = False,
                verify: bool | None = None, progress: Callable[..., Any] | None = None,
                extra_visitors: Iterable[Callable[[Any, Any], None]] = ()) -> tuple[list[Finding], ScanStats]:
    """Scan an opened image source (``bilge.source.open_image``): config, history and every layer."""
    ruleset = ruleset or load_ruleset()
    scanner = Scanner(ruleset)
    stats = ScanStats()
    image: Image = src.image
    findings = scan_image_config(image, scanner, stats)
    if files:
        from bilge.fs import walk_image

        visitor = FileVisitor(scanner, stats, scan_binaries=scan_binaries)
        kwargs: dict[str, Any] = {"visitors": [visitor, *extra_visitors], "verify": verify}
        if progress is not None:
            kwargs["progress"] = progress
        fs = walk_image(src, **kwargs)
        stats.layers = max(stats.layers, len(image.layers))
        findings += file_findings(visitor.hits, fs.version_at)
    return fold_copies(sort_findings(findings)), stats


def build_report(image: Image, findings: list[Finding], stats: ScanStats, *, threshold: str = "high",
                 ignores: list[IgnoreEntry] | None = None, files_scanned: bool = True) -> Report:
    kept, silenced = apply(findings, ignores or [])
    platform = str(image.platform) if image.platform else None
    return Report(reference=image.reference, image_id=image.image_id, digest=image.digest, platform=platform,
                  layers=len(image.layers), findings=tuple(sort_findings(kept)), silenced=tuple(silenced),
                  stats=stats, threshold=threshold, files_scanned=files_scanned)


def at_or_above(findings: Iterable[Finding], threshold: str) -> list[Finding]:
    limit = severity_rank(threshold)
    return [f for f in findings if f.rank >= limit]
