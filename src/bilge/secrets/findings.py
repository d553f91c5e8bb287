"""Turn scanner hits into findings: location, masked match, fingerprint, and how to fix it."""

from __future__ import annotations

from bilge.secrets.hit import Hit
from bilge.secrets.mask import fingerprint, mask
from bilge.secrets.model import Finding, Location

ROTATE = "Rotate it: anyone who pulled the image has it."

# Advice by where the secret is ("origin" refines history entries).
ADVICE = {
    "build-arg": ("Build args are recorded in the image history for anyone who pulls it: pass the value with "
                  "`RUN --mount=type=secret,id=...` (BuildKit) instead of ARG, or use it only in a build "
                  "stage that is not shipped."),
    "arg-default": "An ARG default is recorded in the image history: remove the default and use a secret mount.",
    "env": ("ENV values are stored in the image config and in every container's environment: pass it at "
            "run time (docker run --env-file, your orchestrator's secrets) instead."),
    "label": "Labels are public image metadata: remove it.",
    "annotation": "Annotations are public metadata: remove it.",
    "run": ("A RUN command line is recorded in the image history: read the value from a secret mount "
            "(`RUN --mount=type=secret`) instead of writing it in the Dockerfile."),
    "instruction": "Instructions are recorded in the image history: do not write credentials in the Dockerfile.",
    "config": "Entrypoint, Cmd and Healthcheck are public image config: pass the value at run time.",
    "file": ("Do not COPY the file into the image (add it to .dockerignore); for build-time use mount it "
             "with `RUN --mount=type=secret`."),
    "file-deleted": ("Deleting it in a later layer does not remove it: the layer that added it still ships "
                     "it. Mount it with `RUN --mount=type=secret`, or add, use and delete it in one RUN, or "
                     "build in a stage that is not shipped."),
}


def advice(origin: str, rule_fix: str = "", rotate: bool = True) -> str:
    parts = [ADVICE.get(origin, ADVICE["instruction"])]
    if rule_fix:
        parts.append(rule_fix)
    if rotate:
        parts.append(ROTATE)
    return " ".join(parts)


def make_finding(hit: Hit, location: Location, origin: str, *, note: str = "") -> Finding:
    secret = hit.secret
    return Finding(
        rule=hit.rule_id,
        title=hit.title,
        severity=hit.severity,
        location=location,
        secret=secret,
        masked=mask(secret, hit.reveal),
        fingerprint=fingerprint(hit.rule_id, location.where(), secret),
        fix=advice(origin, hit.fix, rotate=hit.severity not in ("info",)),
        note="; ".join(n for n in (hit.note, note) if n),
    )
