"""``scrub``: remove or redact the secrets ``bilge secrets`` finds in an image's config and files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bilge import __version__
from bilge.fs import MergedFS
from bilge.image import Image, Layer
from bilge.rewrite.config import RewriteResult, _created, rewrite_config, scrub_config
from bilge.rewrite.squash import SquashCounts, _existing, _path_key, plan_squash, read_fs, squash_members
from bilge.sink import Compression, ExistingLayer, NewLayer, OutputSpec, write_image

if TYPE_CHECKING:
    from bilge.source.base import ImageSource


def scrub(src: ImageSource, output: str | OutputSpec, *, env_mode: str = "remove", label_mode: str = "remove",
          remove_files: bool = False, compression: Compression | None = None, clamp: int | None = None,
          verify: bool | None = None, progress: Callable[[Layer, int], None] | None = None,
          ruleset: Any = None, severity: str = "high", ignores: Sequence[Any] = (),
          command: str | None = None) -> RewriteResult:
    """Remove what ``bilge secrets`` finds at or above ``severity`` (its default too), less what the
    user silenced (``ignores``): from the config (history redacted, Env/Labels removed or redacted),
    and from the layers by squashing from the first layer that holds a secret file, so the bytes
    really disappear. Visible files holding a secret are dropped only with ``remove_files``."""
    from dataclasses import replace

    from bilge.secrets import FileVisitor, at_or_above, load_ruleset, scan_image_config
    from bilge.secrets.ignore import apply as apply_ignores
    from bilge.secrets.model import ScanStats
    from bilge.secrets.scanner import file_findings
    from bilge.secrets.textscan import Scanner

    image: Image = src.image
    scanner = Scanner(ruleset or load_ruleset())
    stats = ScanStats()
    visitor = FileVisitor(scanner, stats)
    read = read_fs(src, verify=verify, visitors=[visitor], progress=progress)
    cfg_findings = scan_image_config(image, scanner, stats)
    file_f = file_findings(visitor.hits, read.fs.version_at)
    if ignores:
        cfg_findings = apply_ignores(cfg_findings, list(ignores))[0]
        file_f = apply_ignores(file_f, list(ignores))[0]
    cfg_findings = at_or_above(cfg_findings, severity)
    file_f = at_or_above(file_f, severity)
    visible_secret_paths = sorted({f.location.path for f in file_f if not f.deleted and f.location.path})
    layers_with = sorted({f.location.layer for f in file_f if f.location.layer is not None})
    start = layers_with[0] if layers_with else None
    # the config: findings that point into it, redacted
    cfg, actions = scrub_config(image.config, cfg_findings, env_mode=env_mode, label_mode=label_mode)
    scrubbed_image = replace(image, config=cfg)
    counts = SquashCounts()
    details: dict[str, Any] = {
        "config_findings": len(cfg_findings), "file_findings": len(file_f),
        "actions": actions, "squashed_from": start, "removed_files": [], "remaining": [],
        "findings": [{"rule": f.rule, "where": f.location.where(), "secret": f.masked,
                      "deleted": f.deleted} for f in cfg_findings + file_f],
    }
    if start is None:
        cfg["history"] = list(cfg.get("history") or []) + [{
            "created_by": command or "bilge scrub", "empty_layer": True,
            "comment": f"bilge {__version__}: " + (f"removed {len(cfg_findings)} secret(s) from the config"
                                                     if cfg_findings else "no secrets found"),
            **({"created": _created(image, clamp)} if _created(image, clamp) else {}),
        }]
        if _created(image, clamp):
            cfg["created"] = _created(image, clamp)
        cfg.pop("rootfs", None)
        layers: list[ExistingLayer | NewLayer] = [_existing(src, layer) for layer in image.layers]
        result = write_image(output, cfg, layers, compression=compression, clamp=clamp)
        return RewriteResult("scrub", image.reference, result, len(image.layers), image.compressed_bytes,
                             result.layer_bytes, counts, details)
    removed = set(visible_secret_paths) if remove_files else set()
    keep = (lambda path, v: path not in removed) if removed else None
    plan = plan_squash(read, start, keep=keep)
    if removed:
        # a removed path that a base layer also wrote would come back from the base: white it out
        plan.whiteouts = sorted(set(plan.whiteouts) | {p for p in removed if _in_base(read.fs, p, start)},
                                key=_path_key)
    details["removed_files"] = sorted("/" + p for p in removed)
    details["remaining"] = [] if remove_files else ["/" + p for p in visible_secret_paths]
    entry = {
        "created_by": command or f"bilge scrub (from layer {start})",
        "comment": f"bilge {__version__}: squashed layers {start}-{len(image.layers) - 1} so that "
                   f"{len({f.location.path for f in file_f})} file(s) holding secrets are gone from the layers"
                   + (f"; removed {len(removed)} visible file(s)" if removed else ""),
    }
    config = rewrite_config(scrubbed_image, start, entry, clamp=clamp)
    layers = [_existing(src, layer) for layer in image.layers[:start]]
    layers.append(NewLayer(squash_members(src, read, plan, counts, clamp=clamp)))
    result = write_image(output, config, layers, compression=compression, clamp=clamp)
    return RewriteResult("scrub", image.reference, result, len(image.layers), image.compressed_bytes,
                         result.layer_bytes, counts, details)


def _in_base(fs: MergedFS, path: str, start: int) -> bool:
    """Whether a base layer (< start) holds a version of ``path`` visible after layer start-1."""
    return any(0 <= v.layer < start and (v.hidden_by is None or v.hidden_by >= start) for v in fs.versions(path))
