"""Packages a RUN installs and purges again in the same instruction ship nothing (issue 12).

The pattern of the official language images::

    savedAptMark="$(apt-mark showmanual)"; apt-get install -y gcc make libssl-dev; ./configure && make install; \
    apt-mark auto '.*' > /dev/null; [ -z "$savedAptMark" ] || apt-mark manual $savedAptMark; \
    apt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false

``apt-mark auto`` marks every package automatically installed; ``purge --auto-remove`` (or
``autoremove``) then removes every one nothing manual depends on: the toolchain installed earlier
in the same RUN is gone from its layer. Packages marked manual again by name are kept.
"""

from __future__ import annotations

from bilge.dockerfile.shell import Command


def auto_purged(commands: tuple[Command, ...] | list[Command]) -> tuple[bool, frozenset[str]]:
    """(whether the RUN marks packages auto and then auto-removes them, names marked manual again)."""
    marked = False
    purged = False
    manual: set[str] = set()
    for cmd in commands:
        argv = [w.text for w in cmd.argv]
        if not argv:
            continue
        name = argv[0].rsplit("/", 1)[-1]
        if name == "apt-mark" and len(argv) > 1:
            if argv[1] == "auto":
                marked = True
            elif argv[1] == "manual":
                manual.update(a for a in argv[2:] if not a.startswith(("-", "$")))
        elif name in ("apt-get", "apt") and marked:
            pos = [a for a in argv[1:] if not a.startswith("-")]
            sub = pos[0] if pos else ""
            if sub in ("autoremove", "autopurge") or (sub in ("purge", "remove") and "--auto-remove" in argv):
                purged = True
    return marked and purged, frozenset(manual)
