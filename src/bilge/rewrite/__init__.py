"""Rewrites: Image → new layers + new config, handed to a sink (:mod:`bilge.sink`).

One module per rewrite: :mod:`.squash` (merge layers ``N..end`` into one; also the two-pass reader
and planner the others reuse), :mod:`.slim` (keep what the given programs need), :mod:`.scrub`
(remove the secrets ``bilge secrets`` finds); :mod:`.config` writes the new image config.

The functions share their modules' names; this package's attributes are the functions
(``from bilge.rewrite import squash`` is the function, ``bilge.rewrite.squash`` the module in
``sys.modules``).
"""

from __future__ import annotations

# the package's face: the three rewrites and what callers (probe, tests) reuse
from bilge.rewrite.config import REDACTED, RewriteResult, rewrite_config, scrub_config  # noqa: F401
from bilge.rewrite.scrub import scrub  # noqa: F401
from bilge.rewrite.slim import KeepSet, SlimPlan, _Without, keep_chain, plan_slim, slim  # noqa: F401
from bilge.rewrite.squash import (  # noqa: F401
    ReadFS,
    SquashCounts,
    SquashPlan,
    SquashResult,
    plan_squash,
    read_fs,
    resolve_start,
    squash,
    squash_members,
)
