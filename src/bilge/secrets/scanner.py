"""The file scan: a visitor for ``bilge.fs.walk_image`` that reads each regular file once.

``FileVisitor(layer, entry)`` is called for every tar entry of every layer, hidden and deleted
versions included. It decides text or binary from the first bytes, runs the credential-file
recognisers for known paths and the text scanner on text, in windows of ``chunk`` bytes with an
overlap so that memory stays flat whatever the file size. After the walk, :meth:`findings`
asks the merged filesystem whether each version is still visible (``deleted``).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bilge.secrets.credfiles import MAX_CREDFILE, parse_credfile, recognise
from bilge.secrets.findings import make_finding
from bilge.secrets.hit import Hit
from bilge.secrets.model import Finding, Location, ScanStats
from bilge.secrets.precision import judge_file_hit
from bilge.secrets.textscan import FILE_CODE, FILE_CONFIG, NO_NAMES, Scanner, classify, dedupe

CHUNK = 4 << 20
HEAD = 64 << 10  # bytes read to tell text from binary
OVERLAP = 64 << 10
KEEP_BYTES = 16 << 20  # first copies of bodies kept to recognise later copies without hashing


@dataclass(frozen=True)
class FileHit:
    layer: int
    layer_digest: str
    created_by: str
    path: str
    line: int
    hit: Hit


@dataclass
class FileVisitor:
    scanner: Scanner
    stats: ScanStats
    scan_binaries: bool = False
    chunk: int = CHUNK
    overlap: int = OVERLAP
    hits: list[FileHit] = field(default_factory=list)
    _layers_seen: set[int] = field(default_factory=set)
    # identical contents (a file rewritten by a later chown/chmod, COPY --from duplicates) are
    # scanned once: sha1 of the body + scan context -> hits with their lines. A body is hashed only
    # when a cheap signature (size, head, tail) was seen before, so unique files cost nothing.
    _seen: dict[tuple[bytes, str, bool], list[tuple[Hit, int]]] = field(default_factory=dict)
    _sigs: set[tuple[int, bytes, bytes]] = field(default_factory=set)
    # the first body of each signature, kept (up to KEEP_BYTES in all) with its hits: a second copy is
    # recognised by comparing bytes (memcmp), neither hashed nor scanned again
    _kept: dict[tuple[int, bytes, bytes, str, bool], tuple[bytes, list[tuple[Hit, int]]]] = field(default_factory=dict)
    _kept_bytes: int = 0

    def __call__(self, layer: Any, entry: Any) -> None:
        if layer.index not in self._layers_seen:
            self._layers_seen.add(layer.index)
            self.stats.layers += 1
        self.stats.entries += 1
        if entry.type != "file" or getattr(entry, "whiteout", None):
            return
        path: str = entry.path
        size: int = entry.size
        paths = self.scanner.ruleset.paths
        if paths.exclude and paths.is_excluded(path):
            self.stats.excluded.add(size)
            return
        cred = recognise(path, self.scanner.ruleset.disabled)
        if size == 0:
            if cred:
                self.stats.credential_files += 1
            self.stats.scanned.add(0)
            return
        # classify from the head (served from the entry's body cache, no reader made); only text
        # (or a credential file) is read further
        first = _head(entry, min(size, HEAD))
        kind = classify(first)
        body = None  # an independent reader, for a body longer than one window
        if len(first) < size and (kind == "text" or cred or (kind == "binary" and self.scan_binaries)):
            if size <= self.chunk:
                first = _head(entry, size)
            else:
                body = entry.fileobj
                body.seek(len(first))
                first += _read(body, self.chunk - len(first))
        found: list[tuple[Hit, int]] = []
        if cred:
            self.stats.credential_files += 1
            data = first[:MAX_CREDFILE]
            for rule in cred:
                if kind != "text" and not rule.binary:
                    continue
                pos, line = 0, 1  # line numbers counted incrementally, not from the start for each hit
                for h in sorted(parse_credfile(rule, data, self.scanner.ruleset.names), key=lambda h: h.start):
                    line += data.count(b"\n", pos, h.start)
                    pos = max(pos, h.start)
                    found.append((h, line))
        if kind == "text" or (kind == "binary" and self.scan_binaries):
            library = paths.is_library(path)
            if library or kind != "text" or paths.names_off(path):  # no name rule runs in third-party code
                context = NO_NAMES
            elif first.startswith(b"#!"):
                context = _script_context(first)
            elif paths.is_config(path) or not posixpath.splitext(path)[1]:
                context = FILE_CONFIG
            else:
                context = FILE_CODE
            found.extend(self._scan_body(first, body, size, context, library))
            self.stats.scanned.add(size)
        elif kind == "archive":
            self.stats.archives.add(size)
        else:
            self.stats.binary.add(size)
        if not found:
            return
        # a credential-file hit and a text hit on the same value are one finding
        merged = [judge_file_hit(h, path, first) for h in dedupe([h for h, _ in found])]
        lines = {(h.start, h.rule_id): line for h, line in found}
        created_by = layer.created_by if hasattr(layer, "created_by") else ""
        for h in merged:
            self.hits.append(FileHit(layer.index, layer.digest, created_by, path, lines.get((h.start, h.rule_id), 0), h))

    # ------------------------------------------------------------------------------------
    def _scan_body(self, first: bytes, body: Any, size: int, context: str, library: bool) -> list[tuple[Hit, int]]:
        scan = self.scanner.scan
        if len(first) >= size:
            sig = (size, first[:64], first[-64:])
            if sig not in self._sigs:
                self._sigs.add(sig)
                result = _with_lines(first, scan(first, context, library), 0, 0)
                if self._kept_bytes + size <= KEEP_BYTES:
                    self._kept[(*sig, context, library)] = (first, result)
                    self._kept_bytes += size
                return result
            kept = self._kept.get((*sig, context, library))
            if kept is not None and kept[0] == first:
                return kept[1]
            key = (hashlib.sha1(first).digest(), context, library)
            cached = self._seen.get(key)
            if cached is None:
                cached = self._seen[key] = _with_lines(first, scan(first, context, library), 0, 0)
            return cached
        out: list[tuple[Hit, int]] = []
        seen: set[tuple[str, int]] = set()
        buf = first
        base = 0  # absolute offset of buf[0]
        lines_before = 0
        margin = self.overlap // 2
        while True:
            more = _read(body, self.chunk)
            final = not more
            hits = scan(buf, context, library)
            if not final:
                hits = [h for h in hits if h.start < len(buf) - margin]
            fresh = []
            for h in hits:
                key = (h.rule_id, base + h.start)
                if key not in seen:
                    seen.add(key)
                    fresh.append(h)
            out.extend(_with_lines(buf, fresh, base, lines_before))
            if final:
                return out
            keep = min(self.overlap, len(buf))
            dropped = len(buf) - keep
            lines_before += buf.count(b"\n", 0, dropped)
            base += dropped
            buf = buf[dropped:] + more


_CODE_INTERPRETERS = (b"perl", b"python", b"ruby", b"node", b"php", b"lua", b"tclsh", b"awk", b"deno", b"bun")


def _script_context(first: bytes) -> str:
    """A script is source code when its interpreter is a programming language, config-like for shells."""
    line = first[:200].split(b"\n", 1)[0]
    return FILE_CODE if any(i in line for i in _CODE_INTERPRETERS) else FILE_CONFIG


def _head(entry: Any, n: int) -> bytes:
    """The first ``n`` bytes of an entry's body (``Entry.head``; ``read`` for other entry types)."""
    head = getattr(entry, "head", None)
    return head(n) if head is not None else entry.read(n)


def _read(body: Any, n: int) -> bytes:
    """Read up to ``n`` bytes from a body reader (fewer only at its end)."""
    parts = []
    want = n
    while want > 0:
        data = body.read(want)
        if not data:
            break
        parts.append(data)
        want -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _with_lines(buf: bytes, hits: list[Hit], base: int, lines_before: int) -> list[tuple[Hit, int]]:
    """Hits with absolute offsets and 1-based line numbers (one pass over the buffer)."""
    out = []
    pos = 0
    line = lines_before + 1
    for h in sorted(hits, key=lambda x: x.start):
        line += buf.count(b"\n", pos, h.start)
        pos = h.start
        if base:
            h = Hit(h.rule_id, h.title, h.severity, h.secret, h.start + base, h.end + base, h.key, h.reveal,
                    h.fix, h.note, h.named)
        out.append((h, line))
    return out


def file_findings(hits: list[FileHit], version_at: Callable[[str, int], Any] | None) -> list[Finding]:
    """Findings for file hits; ``version_at(path, layer)`` tells if that version is still visible."""
    out = []
    for fh in hits:
        hidden_by = hidden_how = None
        if version_at is not None:
            version = version_at(fh.path, fh.layer)
            if version is not None:
                hidden_by = getattr(version, "hidden_by", None)
                hidden_how = getattr(version, "hidden_how", None)
        deleted = hidden_by is not None
        loc = Location(kind="file", layer=fh.layer, layer_digest=fh.layer_digest, path=fh.path,
                       line=fh.line or None, instruction=fh.created_by or None)
        f = make_finding(fh.hit, loc, "file-deleted" if deleted else "file")
        out.append(replace(f, deleted=deleted, hidden_by=hidden_by, hidden_how=hidden_how))
    return out
