"""`bilge lint Dockerfile --image REF`: tie each finding to the bytes it costs in the built image.

1. Align the shipped stages' instructions with the image history. BuildKit writes ``RUN |1 A=b /bin/sh -c
   CMD # buildkit``, ``COPY SRC... DEST # buildkit`` (flags dropped); the legacy builder writes
   ``|1 A=b /bin/sh -c CMD`` and ``/bin/sh -c #(nop) COPY dir:HASH in DEST``. A small sequence alignment
   (instructions in build order against history entries) pairs them; base-image entries stay unpaired.
2. Read the image once (``bilge.fs.walk_image``): bytes each layer wrote, and for each layer the bytes of
   lower layers it hid (deleted, overwritten, opaque), by writing layer.
3. Attach measured bytes and a sentence to each finding, add cleanups the Dockerfile alone cannot see
   (a RUN deleting base-image files), and sort by bytes.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import bilge.dockerfile.needed as needed
from bilge.deps import DepsResult, ElfCollector, ImageView
from bilge.dockerfile.needed import CopyNeed
from bilge.dockerfile.parse import Instruction
from bilge.dockerfile.rules import MEASURES, cache_not_cleaned, cleanup_later_layer
from bilge.dockerfile.rules.base import Analysis, Finding, finding, measured
from bilge.dockerfile.runmodel import strip_glob_tail, under
from bilge.fs import MergedFS
from bilge.history import instruction as history_instruction
from bilge.image import Image
from bilge.severity import rank as severity_rank
from bilge.units import human_bytes

_LAYER_KEYWORDS = frozenset({"RUN", "COPY", "ADD", "WORKDIR"})
_MIN_IMAGE_ONLY = 1_000_000  # report a RUN that deletes base-image bytes from 1 MB up


@dataclass
class ImageReport:
    reference: str
    image_id: str
    digest: str | None
    layers: int
    total_layer_bytes: int
    aligned: dict[int, int] = field(default_factory=dict)  # instruction line -> history index
    layer_of: dict[int, int] = field(default_factory=dict)  # instruction line -> layer index
    unaligned: list[int] = field(default_factory=list)  # lines of layer instructions not found in history
    base_layers: int = 0
    notes: list[str] = field(default_factory=list)



# --- alignment ----------------------------------------------------------------------------------------------

def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _run_text(ins: Instruction) -> str:
    if ins.json:
        return " ".join(ins.args)
    return " ".join(ins.args)


def _score(ins: Instruction, created_by: str) -> int:
    """How well a history entry matches an instruction: 10 exact, 6 close, 0 not this instruction."""
    kw, text = history_instruction(created_by)
    if not kw or kw != ins.keyword:
        return 0
    body = _norm(text[len(kw):]) if text.upper().startswith(kw) else _norm(text)
    if ins.keyword == "RUN":
        mine = _norm(_run_text(ins))
        if body == mine:
            return 10
        if len(mine) >= 8 and (mine in body or body in mine):
            return 6
        return 0
    if ins.keyword in ("COPY", "ADD"):
        args = [a for a in ins.args if not a.startswith("--")]
        if body == _norm(" ".join(args)):
            return 10
        m = re.search(r"\bin (\S+)\s*$", body)  # legacy: COPY dir:HASH in DEST
        if m and m.group(1).rstrip("/") == ins.args[-1].rstrip("/"):
            return 6
        return 0
    if ins.keyword in ("ENV", "LABEL"):
        mine = _norm(" ".join(f"{k}={v}" for k, v in zip(ins.args[0::2], ins.args[1::2], strict=False)))
    else:
        mine = _norm(" ".join(ins.args))
    mine = mine.replace('"', "")
    if body.replace('"', "") == mine or body == _norm(ins.original[len(ins.keyword):]):
        return 5
    return 0


def align(instructions: list[Instruction], image: Image) -> dict[int, int]:
    """Instruction index -> history index, maximising the total match score (an LCS with weights)."""
    hist = list(image.history)
    n, m = len(instructions), len(hist)
    if not n or not m:
        return {}
    scores = [[_score(ins, h.created_by) for h in hist] for ins in instructions]
    dp = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, nxt = dp[i], dp[i + 1]
        for j in range(m - 1, -1, -1):
            best = max(nxt[j], row[j + 1])
            s = scores[i][j]
            if s and s + nxt[j + 1] > best:
                best = s + nxt[j + 1]
            row[j] = best
    out: dict[int, int] = {}
    i = j = 0
    while i < n and j < m:
        s = scores[i][j]
        if s and dp[i][j] == s + dp[i + 1][j + 1]:
            out[instructions[i].index] = j
            i += 1
            j += 1
        elif dp[i][j] == dp[i + 1][j]:
            i += 1
        else:
            j += 1
    return out


# --- measurement -----------------------------------------------------------------------------------------------

_DPKG_LIST = re.compile(r"^var/lib/dpkg/info/([^/]+?)(?::[a-z0-9_]+)?\.list$")
_APK_DB = "lib/apk/db/installed"


class PackageDBCollector:
    """A ``walk_image`` visitor keeping the package databases each layer writes (dpkg .list files, apk's db)."""

    def __init__(self) -> None:
        self.dpkg: dict[int, dict[str, list[str]]] = defaultdict(dict)  # layer -> package -> paths
        self.apk: dict[int, str] = {}  # layer -> the installed db text it wrote

    def __call__(self, layer, entry) -> None:
        if entry.type != "file" or entry.whiteout is not None:
            return
        m = _DPKG_LIST.match(entry.path) if entry.path.startswith("var/lib/dpkg/info/") else None
        if m and entry.size < 8_000_000:
            text = entry.read().decode("utf-8", "replace")
            self.dpkg[layer.index][m.group(1)] = [ln.strip().lstrip("/") for ln in text.splitlines() if ln.strip()]
        elif entry.path == _APK_DB and entry.size < 64_000_000:
            self.apk[layer.index] = entry.read().decode("utf-8", "replace")

    def packages_in(self, layer: int) -> dict[str, list[str]]:
        """Packages (name -> paths) that ``layer`` installed or rewrote."""
        out = dict(self.dpkg.get(layer, {}))
        if layer in self.apk:
            now = _apk_blocks(self.apk[layer])
            earlier = [k for k in self.apk if k < layer]
            before = _apk_blocks(self.apk[max(earlier)]) if earlier else {}
            for name, (block, files) in now.items():
                if before.get(name, ("", []))[0] != block:
                    out[name] = files
        return out


def _apk_blocks(text: str) -> dict[str, tuple[str, list[str]]]:
    out: dict[str, tuple[str, list[str]]] = {}
    for block in text.split("\n\n"):
        name, folder, files = None, "", []
        for line in block.splitlines():
            key, _, value = line.partition(":")
            if key == "P":
                name = value
            elif key == "F":
                folder = value
            elif key == "R":
                files.append(f"{folder}/{value}" if folder else value)
        if name:
            out[name] = (block, files)
    return out

@dataclass
class Measure:
    fs: MergedFS
    files_by_layer: dict[int, list[tuple[str, int]]]
    hidden: dict[int, dict[int, int]]  # hider layer -> writer layer -> bytes
    hidden_files: dict[int, list[tuple[str, int, int, str]]]  # hider -> (path, bytes, writer, how)
    packages: PackageDBCollector | None = None
    deps: ImageView | None = None  # bilge.deps' view of the image (ELF facts from the same pass), for COPY --from
    config: Mapping[str, object] = field(default_factory=dict)  # the image's runtime config
    _elf_paths: list[str] | None = None
    _closures: dict[tuple, tuple[DepsResult | None, list[str]]] = field(default_factory=dict)

    def copy_need(self, layer: int, dest: str) -> CopyNeed | None:
        """What of the files ``layer`` (a COPY into ``dest``) wrote the programs outside ``dest`` load."""
        if self.deps is None:
            return None
        if self._elf_paths is None:
            self._elf_paths = needed.elf_files(self.fs, self.deps)
        roots = needed.find_roots(self.fs, self.deps, dest, self.config, self._elf_paths)
        key = (roots.paths, roots.binaries, roots.entrypoint)
        if key not in self._closures:
            self._closures[key] = needed.resolve_closure(self.deps, roots, self.config)
        result, notes = self._closures[key]
        return needed.copy_need(self.fs, self.deps, layer, roots, result, notes)

    def package_bytes(self, layer: int) -> dict[str, int]:
        """Bytes each package installed by ``layer`` wrote in that layer (from dpkg/apk databases)."""
        if self.packages is None:
            return {}
        sizes = dict(self.files_by_layer.get(layer, ()))
        return {name: sum(sizes.get(p, 0) for p in set(paths))
                for name, paths in self.packages.packages_in(layer).items()}

    def layer_bytes(self, layer: int) -> int:
        return sum(s for _, s in self.files_by_layer.get(layer, ()))

    def bytes_under(self, layer: int, patterns: list[str]) -> int:
        total = 0
        for path, size in self.files_by_layer.get(layer, ()):
            p = "/" + path
            for pat in patterns:
                base = strip_glob_tail(pat)
                if ("*" in base and (fnmatch.fnmatch(p, base) or fnmatch.fnmatch(p, base + "/*"))) or (
                        "*" not in base and under(p, base)):
                    total += size
                    break
        return total

    def overwritten_by(self, layer: int) -> int:
        return sum(b for p, b, w, how in self.hidden_files.get(layer, ()) if how == "overwritten")


def measure(fs: MergedFS, packages: PackageDBCollector | None = None, deps: ImageView | None = None,
            config: Mapping[str, object] | None = None) -> Measure:
    files: dict[int, list[tuple[str, int]]] = defaultdict(list)
    hidden: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    hidden_files: dict[int, list[tuple[str, int, int, str]]] = defaultdict(list)
    for path, v in fs.all_versions():
        if v.kind != "file" or v.implicit:
            continue
        files[v.layer].append((path, v.size))
        if v.hidden_by is not None and v.hidden_by != v.layer:
            hidden[v.hidden_by][v.layer] += v.size
            hidden_files[v.hidden_by].append((path, v.size, v.layer, v.hidden_how or ""))
    return Measure(fs, dict(files), {k: dict(v) for k, v in hidden.items()}, dict(hidden_files), packages, deps,
                   dict(config or {}))


# --- attaching bytes ----------------------------------------------------------------------------------------

def attach(findings: list[Finding], an: Analysis, image: Image, fs: MergedFS, reference: str,
           show_secrets: bool = False, packages: PackageDBCollector | None = None,
           elf: ElfCollector | None = None) -> tuple[list[Finding], ImageReport]:
    """Measured bytes for each finding. ``packages`` and ``elf`` are visitors of the same ``walk_image`` pass
    that built ``fs`` (``elf``, a ``bilge.deps.ElfCollector``, lets ``broad-copy-from`` say what is needed)."""
    seq = an.shipped_instructions()
    pairs = align([i for i in seq if i.keyword != "FROM"], image)
    report = ImageReport(reference=reference, image_id=image.image_id, digest=image.digest,
                         layers=len(image.layers), total_layer_bytes=0)
    for ins in seq:
        if ins.index in pairs:
            h = image.history[pairs[ins.index]]
            report.aligned[ins.line] = h.index
            if h.layer is not None:
                report.layer_of[ins.line] = h.layer
        elif ins.keyword in ("RUN", "COPY", "ADD"):
            report.unaligned.append(ins.line)
    m = measure(fs, packages, elf.view(fs) if elf is not None else None, image.container_config)
    report.total_layer_bytes = sum(m.layer_bytes(i) for i in range(len(image.layers)))
    ours = sorted(report.layer_of.values())
    report.base_layers = ours[0] if ours else 0
    if not report.aligned:
        report.notes.append("no instruction of the shipped stages matches the image history: is the image built "
                            "from this Dockerfile (and this --target)? Findings carry no bytes.")
        return findings, report
    if report.unaligned:
        report.notes.append(f"{len(report.unaligned)} RUN/COPY/ADD instruction(s) not found in the image history "
                            f"(lines {', '.join(map(str, report.unaligned[:10]))}): their findings carry no bytes")

    layer_line = {layer: line for line, layer in report.layer_of.items()}

    def line_of_layer(layer: int) -> str:
        if layer in layer_line:
            return f"line {layer_line[layer]}"
        if layer < report.base_layers:
            return "the base image"
        return f"layer {layer}"

    out: list[Finding] = []
    handled_layers: set[int] = set()
    for f in findings:
        layer = report.layer_of.get(f.line)
        fn = MEASURES.get(f.rule)
        if fn is None:
            out.append(f)
            continue
        new = fn(f, an, image, m, layer, line_of_layer, report, show_secrets)
        if f.rule == "cleanup-later-layer" and layer is not None:
            handled_layers.add(layer)
        out.append(new)
    # deletions the Dockerfile alone cannot explain: a RUN that deletes files of the base image
    for ins in seq:
        layer = report.layer_of.get(ins.line)
        if layer is None or ins.keyword != "RUN" or layer in handled_layers:
            continue
        deleted = {w: b for w, b in m.hidden.get(layer, {}).items()}
        gone = [(p, b, w, how) for p, b, w, how in m.hidden_files.get(layer, ()) if how != "overwritten"]
        total = sum(b for _, b, _, _ in gone)
        if total < _MIN_IMAGE_ONLY:
            continue
        writers = sorted({w for _, _, w, _ in gone})
        by = ", ".join(f"{human_bytes(sum(b for _, b, w2, _ in gone if w2 == w))} by {line_of_layer(w)}"
                       for w in writers[:6])
        top = ", ".join(sorted({"/" + p.split("/")[0] + ("/" + p.split("/")[1] if "/" in p else "")
                                for p, _, _, _ in gone})[:4])
        msg = (f"{ins.short(60)} deletes {human_bytes(total)} that earlier layers still ship ({by}; under {top}): "
               f"line {ins.line} frees 0 bytes")
        st = an.df.stages[ins.stage]
        if not deleted:
            continue
        base_only = all(w < report.base_layers for w in writers)
        fix = ("Files of the base image cannot be freed by a later layer: choose a smaller base image (or a -slim "
               "variant), or squash the layers (`bilge squash`)." if base_only else
               "Delete the files in the same RUN that creates them, or build in a separate stage.")
        out.append(replace(finding(an, cleanup_later_layer.RULE, ins, msg + ".",
                                    related=[layer_line[w] for w in writers if w in layer_line],
                                    details={"image_only": True, "stage": st.name}, fix=fix), bytes=total))
    out = _apt_cache(out, an, seq, m, report)
    out = _sort(out)
    return out, report


def _apt_cache(findings: list[Finding], an: Analysis, seq: list[Instruction], m: Measure,
               report: ImageReport) -> list[Finding]:
    """apt's /var/cache/apt (pkgcache.bin, .deb archives) stays when the base image has no docker-clean hook."""
    by_line = {(f.line, f.rule): i for i, f in enumerate(findings)}
    for ins in seq:
        layer = report.layer_of.get(ins.line)
        if layer is None or ins.keyword != "RUN":
            continue
        facts = an.facts(ins)
        if not any(p.manager == "apt" for p in facts.installs) and not any(c.kind == "apt-lists" for c in facts.caches):
            continue
        if any(mt.type == "cache" and mt.target and under("/var/cache/apt", mt.target.rstrip("/")) for mt in facts.mounts):
            continue
        b = m.bytes_under(layer, ["/var/cache/apt"])
        if b < _MIN_IMAGE_ONLY:
            continue
        text = (f"{human_bytes(b)} under /var/cache/apt (pkgcache.bin, downloaded .deb files) stay in the layer of "
                f"line {ins.line}: this base image has no docker-clean hook.")
        i = by_line.get((ins.line, "cache-not-cleaned"))
        if i is not None:
            f = findings[i]
            findings[i] = replace(f, message=f"{f.message} {text}", bytes=(f.bytes or 0) + b)
        else:
            msg = f"{ins.short(60)} leaves apt's cache (/var/cache/apt) in the layer of {an.role(an.df.stages[ins.stage])}."
            f = finding(an, cache_not_cleaned.RULE, ins, msg, details={"caches": ["apt-cache"], "image_only": True},
                         fix="End the RUN with `&& apt-get clean && rm -rf /var/lib/apt/lists/*`, or use "
                             "`RUN --mount=type=cache,target=/var/cache/apt,sharing=locked`.")
            findings.append(measured(f, text, b, cache_bytes=b))
    return findings


def _sort(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-(f.bytes if f.bytes is not None else -1), -severity_rank(f.severity),
                                           f.line))
