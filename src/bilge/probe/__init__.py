"""`bilge slim --probe`: run the image's own programs in a sandbox, trace what they touch, keep that.

Modules (each small, each usable alone):

* :mod:`bilge.probe.materialise` -- the image's merged filesystem in a private temporary directory
  (never following a symlink out of it; device nodes, setuid bits and the image's /proc and /dev
  contents are not written);
* :mod:`bilge.probe.sandbox` -- the ``bwrap`` command line that runs a probe with that directory as
  ``/`` (read-only), no network, a fresh /proc, a minimal /dev, tmpfs /tmp, an unprivileged uid;
* :mod:`bilge.probe.trace` -- ``strace -f`` around the sandbox, and the parser of its output into the
  image paths the probe touched (found or not);
* :mod:`bilge.probe.session` -- run every probe on the full filesystem, then on the slimmed one, and
  compare.

What a trace adds to slim's keep set (the paths, the symlinks on the way, the ELF objects and ``#!``
scripts whose closure comes along) is :func:`bilge.rewrite.plan_slim`'s ``traced``,
``traced_missing`` and ``programs``; :func:`bilge.rewrite.slim` with ``probe=ProbeOptions(...)``
runs the whole thing.
"""

from __future__ import annotations

from bilge.probe.session import ProbeOptions, ProbeOutcome, ProbeRun, parse_probes

__all__ = ["ProbeOptions", "ProbeOutcome", "ProbeRun", "parse_probes"]
