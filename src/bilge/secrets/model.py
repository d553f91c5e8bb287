"""What a scan produces: findings with their location, and counts of what was (not) scanned."""

from __future__ import annotations

from dataclasses import dataclass, field

from bilge.severity import rank as severity_rank


@dataclass(frozen=True)
class Location:
    """Where a secret is.

    ``kind`` is ``history`` (a ``created_by`` line: build args, RUN, ENV, LABEL, ARG), ``env``
    (config Env), ``label`` (config Labels), ``config`` (Entrypoint, Cmd, Healthcheck, OnBuild),
    ``annotation`` (manifest, index or layer annotations) or ``file`` (a regular file in a layer).
    """

    kind: str
    layer: int | None = None
    layer_digest: str | None = None
    path: str | None = None
    line: int | None = None
    history_index: int | None = None
    key: str | None = None  # variable, label or annotation name; config field
    instruction: str | None = None  # the history line (raw; shown only redacted)

    def where(self) -> str:
        """The part of a fingerprint that says where: stable across rebuilds."""
        if self.kind == "file":
            return f"file:{self.path}"
        if self.kind == "history":
            return f"history:{self.key or ''}"
        return f"{self.kind}:{self.key or ''}"


@dataclass(frozen=True)
class Finding:
    rule: str
    title: str
    severity: str
    location: Location
    secret: str = field(repr=False)  # the raw value: never printed unless --show-secrets
    masked: str = ""
    fingerprint: str = ""
    fix: str = ""
    deleted: bool = False  # the file version is not in the final filesystem
    hidden_how: str | None = None  # deleted | overwritten | opaque | parent replaced
    hidden_by: int | None = None  # the layer that hid it
    also_in_history: tuple[int, ...] = ()  # the same value in further history entries
    also_at: tuple[str, ...] = ()  # the same value found by the same rule in further files ("/path:line")
    note: str = ""

    @property
    def rank(self) -> int:
        return severity_rank(self.severity)


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size


@dataclass
class ScanStats:
    """What the file scan looked at and what it did not, so nothing is silently skipped."""

    layers: int = 0
    entries: int = 0
    scanned: Tally = field(default_factory=Tally)  # text files, content scanned
    binary: Tally = field(default_factory=Tally)  # binaries (ELF, NUL bytes ...) not text-scanned
    archives: Tally = field(default_factory=Tally)  # compressed files and archives not opened
    excluded: Tally = field(default_factory=Tally)  # excluded by the user's exclude_paths
    credential_files: int = 0  # files recognised by path as credential stores
    history_entries: int = 0
    config_values: int = 0  # env, labels, annotations, entrypoint/cmd items looked at



@dataclass(frozen=True)
class Silenced:
    finding: Finding
    reason: str
    source: str  # ".bilgeignore:3" or "pyproject.toml"


@dataclass(frozen=True)
class Report:
    reference: str
    image_id: str | None
    digest: str | None
    platform: str | None
    layers: int
    findings: tuple[Finding, ...]
    silenced: tuple[Silenced, ...]
    stats: ScanStats
    threshold: str
    files_scanned: bool = True

    def failing(self) -> list[Finding]:
        limit = severity_rank(self.threshold)
        return [f for f in self.findings if f.rank >= limit]
