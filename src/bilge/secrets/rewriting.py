"""Rewrites never copy a secret they can see (issue 12): the config part shared by squash and slim.

``bilge squash`` and ``bilge slim`` write a new config from the input's. Before they do, the
history, Env, Labels, Entrypoint/Cmd and annotations are scanned as ``bilge secrets`` scans them
(the user's rules and silenced findings apply), and what it finds at or above the threshold is
redacted as ``bilge scrub`` does: history lines keep their instruction with the value replaced by
``[redacted-by-bilge]``, Env and Labels keep their name with the value redacted (the runtime
config keeps its shape; the container gets no secret). ``--keep-secrets`` opts out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bilge.image import Image


def redact_config_secrets(image: Image, *, ruleset: Any = None, severity: str = "high",
                          ignores: Sequence[Any] = ()) -> tuple[Image, list[str]]:
    """``image`` with the config secrets ``bilge secrets`` finds redacted, and what was done."""
    from bilge.rewrite.config import scrub_config
    from bilge.secrets import at_or_above, load_ruleset, scan_image_config
    from bilge.secrets.ignore import apply as apply_ignores
    from bilge.secrets.textscan import Scanner

    findings = scan_image_config(image, Scanner(ruleset or load_ruleset()))
    if ignores:
        findings = apply_ignores(findings, list(ignores))[0]
    findings = at_or_above(findings, severity)
    if not findings:
        return image, []
    cfg, actions = scrub_config(image.config, findings, env_mode="redact", label_mode="redact")
    return replace(image, config=cfg), actions


KEEP_WARNING = ("--keep-secrets: the output's config keeps the secrets `bilge secrets` finds in the input's "
                "history and config; do not push it anywhere you would not push the input")
