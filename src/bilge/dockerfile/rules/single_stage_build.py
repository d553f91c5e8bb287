"""single-stage-build: a single-stage build ships its toolchain (found by the
toolchain-in-final-stage check, measured the same way)."""

from __future__ import annotations

from bilge.dockerfile.rules.base import Rule
from bilge.dockerfile.rules.common import whole_layer

RULE = Rule(
    "single-stage-build", "medium",
    "A single-stage build ships its toolchain",
    "With one stage, whatever the build needs (compilers, -dev packages, git, SDK images) is in the image "
    "you ship.",
    "Split into a build stage (toolchain, compile) and a runtime stage on a slim base that copies only "
    "the artefacts: `FROM ... AS build` ... `FROM ...-slim` + `COPY --from=build /app /app`.",
    ("size",),
)


measure = whole_layer


check = None  # reported by toolchain_in_final_stage.check, which tells one stage from several
