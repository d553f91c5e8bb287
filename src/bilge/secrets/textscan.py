"""The text scanner: keyword pre-filter on bytes, then only the rules whose keywords occur.

Speed matters: an image holds hundreds of megabytes of text. The buffer is lower-cased once
(C speed) and a multi-keyword search tells which keywords occur; only their rules' regexes run.
With the optional ``ahocorasick_rs`` package that search is one pass over the buffer; without
it, one ``bytes.__contains__`` per keyword (results are identical either way).

Name rules (``DB_PASSWORD=hunter2``) are found from the keyword occurrences: for each
occurrence of e.g. ``pass`` the enclosing identifier is taken, checked with
:func:`bilge.secrets.names.is_secret_name`, and an assignment is parsed after it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Callable

from bilge.secrets.anchors import anchored, finditer_at
from bilge.secrets.hit import Hit
from bilge.secrets.names import is_secret_name, shannon_entropy, value_kind
from bilge.secrets.precision import judge_github, judge_oauth_basic
from bilge.secrets.rules import NameRules, Rule, Ruleset
from bilge.secrets.tokens import judge_npm, judge_pypi
from bilge.severity import rank as severity_rank

try:  # optional accelerator: one pass for all keywords
    import ahocorasick_rs as _ac  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _ac = None


# Contexts: how a text is scanned for name rules.
FILE_CONFIG = "config"  # config-like file: bare and quoted values
FILE_CODE = "code"  # source code: quoted literals only
SHELL = "shell"  # a history line, Entrypoint/Cmd: shell assignments, --flag value
NO_NAMES = "none"  # format rules only




class KeywordIndex:
    """Which of a fixed set of lower-case keywords occur in a lower-cased buffer."""

    def __init__(self, keywords: list[bytes], use_accelerator: bool = True) -> None:
        self.keywords = keywords
        self._ac = None
        if use_accelerator and _ac is not None and keywords:
            self._ac = _ac.BytesAhoCorasick(keywords)

    @property
    def accelerated(self) -> bool:
        return self._ac is not None

    def present(self, low: bytes) -> set[int]:
        if self._ac is not None:
            return {m[0] for m in self._ac.find_matches_as_indexes(low, overlapping=True)}
        return {i for i, kw in enumerate(self.keywords) if kw in low}

    def matches(self, low: bytes) -> list[tuple[int, int, int]] | None:
        """Every (keyword, start, end) occurrence, when accelerated; None otherwise."""
        if self._ac is None:
            return None
        return self._ac.find_matches_as_indexes(low, overlapping=True)


class Scanner:
    """Compiled form of a :class:`Ruleset` for fast repeated scanning."""

    def __init__(self, ruleset: Ruleset, use_accelerator: bool = True) -> None:
        self.ruleset = ruleset
        keywords: list[bytes] = []
        index: dict[bytes, int] = {}
        self._kw_rules: list[list[int]] = []

        def kw_id(kw: bytes) -> int:
            if kw not in index:
                index[kw] = len(keywords)
                keywords.append(kw)
                self._kw_rules.append([])
            return index[kw]

        for ri, rule in enumerate(ruleset.rules):
            for kw in rule.keywords:
                self._kw_rules[kw_id(kw)].append(ri)
        # rules whose every match starts at one of their keywords: tried only there (anchors.py)
        self._anchored: dict[int, tuple[int, ...]] = {
            ri: tuple(index[kw] for kw in rule.keywords)
            for ri, rule in enumerate(ruleset.rules) if anchored(rule.regex, rule.keywords)}
        n_rule_kw = len(keywords)  # the format rules' keywords come first: ids 0 .. n_rule_kw - 1
        self._name_kw: dict[int, bytes] = {}
        if ruleset.names.enabled:
            for kw in ruleset.names.keywords:
                self._name_kw[kw_id(kw)] = kw
        self.index = KeywordIndex(keywords, use_accelerator)
        # third-party code runs no name rule: its keywords ("key", "pass" ...), frequent there, are
        # not searched for (same ids: the rules' keywords are a prefix of the list)
        self._rules_index = (KeywordIndex(keywords[:n_rule_kw], use_accelerator)
                             if n_rule_kw < len(keywords) else self.index)
        self._name_cache: dict[str, bool] = {}

    # ------------------------------------------------------------------------------------
    def scan(self, buf: bytes, context: str, library: bool = False) -> list[Hit]:
        """All hits in ``buf`` (deduplicated: overlapping hits keep the most specific)."""
        low = buf.lower()
        index = self._rules_index if library else self.index
        found = index.matches(low)
        present = {m[0] for m in found} if found is not None else index.present(low)
        if not present:
            return []
        rule_ids: set[int] = set()
        for k in present:
            rule_ids.update(self._kw_rules[k])
        hits: list[Hit] = []
        starts = _starts_by_keyword(found, rule_ids, self._anchored) if found is not None else None
        for ri in sorted(rule_ids):
            rule = self.ruleset.rules[ri]
            kws = self._anchored.get(ri) if starts is not None else None
            at = sorted({p for k in kws for p in starts.get(k, ())}) if kws else None
            hits.extend(_run_rule(rule, buf, library, self.ruleset.names, at))
        if context != NO_NAMES and not library:
            name_ids = [k for k in present if k in self._name_kw]
            if name_ids:
                if found is not None:
                    ids = set(name_ids)
                    positions = sorted({start for k, start, _ in found if k in ids})
                else:
                    positions = sorted({p for k in name_ids for p in _find_all(low, self._name_kw[k])})
                hits.extend(self._names(buf, positions, context))
        return dedupe(hits)

    # ------------------------------------------------------------------------------------
    def _secret_name(self, name: str) -> bool:
        known = self._name_cache.get(name)
        if known is None:
            known = self._name_cache[name] = is_secret_name(name, self.ruleset.names)
        return known

    def _names(self, buf: bytes, positions: list[int], context: str) -> list[Hit]:
        names = self.ruleset.names
        seen: set[int] = set()
        out: list[Hit] = []
        shell = context == SHELL
        last_right = -1
        for pos in positions:
            if pos < last_right:
                continue  # a second keyword inside the same identifier
            if shell:
                right = _IDENT_FWD.match(buf, pos).end()  # type: ignore[union-attr]
            else:
                m = _CANDIDATE.match(buf, pos)  # the identifier, only when an operator follows
                if m is None:
                    continue
                right = m.end()
            last_right = right
            seg = buf[max(0, pos - 120):pos]
            left = pos - (len(seg) - len(seg.rstrip(_IDENT_CHARS)))
            if left in seen:
                continue
            seen.add(left)
            raw_name = buf[left:right]
            name = raw_name.lstrip(b"-.").decode("latin-1")
            if not name or not self._secret_name(name) or buf[max(0, left - 2):left] == b"::":
                continue  # not secret-like, or a namespaced identifier (CPAN::HTTP::Credentials)
            parsed = _assignment(buf, left, right, context, raw_name.startswith(b"-"))
            if parsed is None:
                continue
            vstart, vend, quoted, op = parsed
            if op == b":" and name.lower() in names.not_with_colon:
                continue
            value = buf[vstart:vend].decode("utf-8", "replace")
            if context == FILE_CODE and not quoted:
                continue
            kind = value_kind(value, names, name)
            if kind is None or (context == FILE_CODE and kind != "strong"):
                continue  # in source code only a quoted, generated-looking literal counts
            if names.always_credential(name):
                kind = "strong"
            if names.severity:
                severity = names.severity
            elif shell:
                severity = "high"
            else:
                severity = "high" if kind == "strong" else "medium"
            out.append(Hit(names.id, names.title, severity, value, vstart, vend, key=name,
                           reveal=3, named=True,
                           note="" if kind == "strong" else "short or human-chosen value"))
        return out


def _starts_by_keyword(found: list[tuple[int, int, int]], rule_ids: set[int],
                       anchored_rules: dict[int, tuple[int, ...]]) -> dict[int, list[int]]:
    """Where each keyword of the anchored rules about to run occurs."""
    wanted = {k for ri in rule_ids for k in anchored_rules.get(ri, ())}
    starts: dict[int, list[int]] = {}
    if wanted:
        for k, start, _ in found:
            if k in wanted:
                starts.setdefault(k, []).append(start)
    return starts


def _find_all(low: bytes, kw: bytes) -> list[int]:
    out = []
    pos = low.find(kw)
    while pos >= 0:
        out.append(pos)
        pos = low.find(kw, pos + 1)
    return out


_IDENT_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
_IDENT_FWD = re.compile(rb"[A-Za-z0-9_.\-]*")
# the rest of an identifier, only when an assignment operator (or XML's ">") follows it
_CANDIDATE = re.compile(rb"""[A-Za-z0-9_.\-]*(?=["']?[ \t]{0,10}(?:=|:|>))""")
# after the name: an optional closing quote, an operator, an optional opening quote, the value
_ASSIGN = re.compile(
    rb"""(?P<close>["']?)[ \t]{0,10}(?P<op>=>|:=|==?|:(?![:/]))[ \t]{0,10}"""
    rb"""(?:"(?P<dq>(?:[^"\\\r\n]|\\.){1,1024})"|'(?P<sq>[^'\r\n]{1,1024})'|(?P<bare>[^\s"'`,;#}{)(\]\[<>|&]{1,1024}))"""
)
_XML = re.compile(rb""">[ \t]{0,10}(?P<v>[^<>\s][^<>\r\n]{0,1023}?)[ \t]{0,10}</""")
_FLAG = re.compile(rb"""[ \t]{1,5}(?:"(?P<dq>[^"\r\n]{1,1024})"|'(?P<sq>[^'\r\n]{1,1024})'|(?P<bare>[^\s"'`;|&<>-][^\s"'`;|&<>]{0,1023}))""")


def _assignment(buf: bytes, left: int, right: int, context: str, flag: bool) -> tuple[int, int, bool, bytes] | None:
    """(value start, value end, quoted, operator) for the assignment after the name at buf[left:right]."""
    if left > 0 and buf[left - 1:left] == b"<":
        m = _XML.match(buf, right)
        if m:
            return m.start("v"), m.end("v"), True, b">"
        return None
    m = _ASSIGN.match(buf, right)
    if m:
        op = m.group("op")
        if op == b"==":  # comparison, not assignment
            return None
        if op == b":" and context == SHELL and not m.group("close"):
            # "user:pass" inside a shell line is not an assignment of the name; JSON/YAML is
            return None
        for g in ("dq", "sq"):
            if m.group(g) is not None:
                return m.start(g), m.end(g), True, op
        return m.start("bare"), m.end("bare"), False, op
    if flag and context == SHELL:
        m = _FLAG.match(buf, right)
        if m:
            for g in ("dq", "sq"):
                if m.group(g) is not None:
                    return m.start(g), m.end(g), True, b" "
            return m.start("bare"), m.end("bare"), False, b" "
    return None


def _secret_span(m: re.Match[bytes]) -> tuple[int, int]:
    gd = m.groupdict()
    if gd.get("head") is not None:  # the value starts in a lookbehind, before the literal the match starts at
        return m.start("head"), m.end()
    for name in gd:
        if name.startswith("secret") and gd[name] is not None:
            return m.start(name), m.end(name)
    if m.re.groups >= 1 and m.group(1) is not None:
        return m.start(1), m.end(1)
    return m.start(), m.end()


def _run_rule(rule: Rule, buf: bytes, library: bool, names: NameRules, at: list[int] | None = None) -> list[Hit]:
    """The rule's hits in ``buf``; with ``at`` (an anchored rule), only matches starting there."""
    out: list[Hit] = []
    for m in (rule.regex.finditer(buf) if at is None else finditer_at(rule.regex, buf, at)):
        s, e = _secret_span(m)
        raw = buf[s:e]
        if rule.allow and any(a.search(raw) for a in rule.allow):
            continue
        secret = raw.decode("utf-8", "replace")
        if rule.min_entropy and shannon_entropy(secret) < rule.min_entropy:
            continue
        severity = rule.severity
        note = ""
        if rule.validate:
            verdict = _VALIDATORS[rule.validate](m, secret, names)
            if verdict is None:
                continue
            if verdict:
                severity, note = verdict[0] or severity, verdict[1]
        if library and rule.library_severity:
            if severity_rank(rule.library_severity) < severity_rank(severity):
                severity = rule.library_severity
            note = (note + "; " if note else "") + "in third-party code, most likely a published test fixture"
        out.append(Hit(rule.id, rule.title, severity, secret, s, e, reveal=rule.reveal, fix=rule.fix, note=note))
    return out




def dedupe(hits: list[Hit]) -> list[Hit]:
    """Overlapping hits are one secret: keep the format rule over the name rule, then severity."""
    if len(hits) < 2:
        return hits
    ordered = sorted(hits, key=lambda h: (h.named, -severity_rank(h.severity), h.start))
    # kept spans never overlap, so sorted by start they are sorted by end too: a new span overlaps a
    # kept one only if it overlaps its neighbour on either side (log n per hit, not n)
    starts: list[int] = []
    kept_by_start: list[Hit] = []
    for h in ordered:
        i = bisect.bisect_right(starts, h.start)
        if i > 0 and kept_by_start[i - 1].end > h.start and h.end > kept_by_start[i - 1].start:
            continue
        if i < len(starts) and kept_by_start[i].start < h.end:
            continue
        starts.insert(i, h.start)
        kept_by_start.insert(i, h)
    return kept_by_start


# ---------------------------------------------------------------------------------------------
# Validators: None drops the match; () keeps it as is; (severity, note) changes it ("" keeps the severity).

_Verdict = tuple[str, str] | tuple[()] | None


def _v_pem(m: re.Match[bytes], secret: str, names: NameRules) -> _Verdict:
    kind = (m.group("kind") or b"").decode()
    body = secret.strip()
    if "..." in body or "…" in body or len(re.sub(r"\s", "", body)) < 64:
        return None  # an elided example in documentation
    if kind.startswith("ENCRYPTED") or "Proc-Type: 4,ENCRYPTED" in body:
        return ("medium", "encrypted: protected by a passphrase")
    if kind.startswith("OPENSSH"):
        b64 = re.sub(r"\s", "", body)
        try:
            raw = base64.b64decode(b64[: (len(b64) // 4) * 4][:200] or "", validate=False)
        except (binascii.Error, ValueError):
            raw = b""
        if raw.startswith(b"openssh-key-v1\0") and len(raw) > 19:
            n = int.from_bytes(raw[15:19], "big")
            cipher = raw[19:19 + n]
            if cipher and cipher != b"none":
                return ("medium", f"encrypted ({cipher.decode('ascii', 'replace')}): protected by a passphrase")
    return ("", f"{kind.lower()}, not encrypted")


def _b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _v_jwt(m: re.Match[bytes], secret: str, names: NameRules) -> _Verdict:
    parts = secret.split(".")
    try:
        header = json.loads(_b64url(parts[0]))
        json.loads(_b64url(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or "alg" not in header:
        return None
    if str(header.get("alg", "")).lower() == "none" or len(parts) < 3 or not parts[2]:
        return ("low", "unsigned token (alg none)")
    return ()


_DOC_HOSTS = re.compile(rb"(?:^|\.)(?:example\.(?:com|org|net)|example|invalid|test|localhost\.localdomain)$", re.I)
_FORMAT_TOKENS = re.compile(r"%[sd(]|\{[0-9]*\}|\{[a-z_]+\}|\$\d|\*\*+")


def _v_basic_auth(m: re.Match[bytes], secret: str, names: NameRules) -> _Verdict:
    user = m.group("user").decode("utf-8", "replace")
    host = m.group("host")
    if secret == "x-oauth-basic" or user.startswith(("$", "%", "{", "<")):
        return None
    if _FORMAT_TOKENS.search(secret) or _FORMAT_TOKENS.search(user):
        return None
    if _DOC_HOSTS.search(host.rstrip(b".")):
        return None
    if secret.startswith(("$", "%")) or value_kind(secret, names, user) is None:
        return None
    return ()


def _v_placeholder(m: re.Match[bytes], secret: str, names: NameRules) -> _Verdict:
    if value_kind(secret, names) is None:
        return None
    return ()


def _v_github(m: re.Match[bytes], secret: str, names: NameRules) -> _Verdict:
    return judge_github(secret)


def _v_oauth_basic(m: re.Match[bytes], secret: str, names: NameRules) -> _Verdict:
    return judge_oauth_basic(secret)


_VALIDATORS: dict[str, Callable[[re.Match[bytes], str, NameRules], _Verdict]] = {
    "github": _v_github,
    "npm": lambda m, secret, names: judge_npm(secret),
    "pypi": lambda m, secret, names: judge_pypi(secret),
    "oauth_basic": _v_oauth_basic,
    "pem": _v_pem,
    "jwt": _v_jwt,
    "basic_auth": _v_basic_auth,
    "placeholder": _v_placeholder,
}


# ---------------------------------------------------------------------------------------------
# Binary or text?

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "binary"),
    (b"\x1f\x8b", "archive"),  # gzip
    (b"\x28\xb5\x2f\xfd", "archive"),  # zstd
    (b"\xfd7zXZ\x00", "archive"),  # xz
    (b"BZh", "archive"),
    (b"PK\x03\x04", "archive"),  # zip, jar, whl, apk (android)
    (b"PK\x05\x06", "archive"),
    (b"7z\xbc\xaf\x27\x1c", "archive"),
    (b"\x89PNG", "binary"),
    (b"\xff\xd8\xff", "binary"),
    (b"GIF8", "binary"),
    (b"\xca\xfe\xba\xbe", "binary"),
    (b"\xcf\xfa\xed\xfe", "binary"),
    (b"MZ", "binary"),
    (b"\x00asm", "binary"),
    (b"SQLite format 3\x00", "binary"),
    (b"!<arch>\n", "archive"),
)


_MAGIC_FIRST = frozenset(m[0] for m, _ in _MAGIC)


def classify(head: bytes) -> str:
    """``text``, ``binary`` or ``archive`` (compressed/packed: never opened) from the first bytes."""
    if head and head[0] in _MAGIC_FIRST:
        for magic, kind in _MAGIC:
            if not head.startswith(magic):
                continue
            if magic == b"MZ" and b"\x00" not in head[:512]:
                continue  # text that starts with "MZ"
            if magic == b"BZh" and not (len(head) > 3 and head[3:4].isdigit()):
                continue
            return kind
    if b"\x00" in head[:8192]:
        return "binary"
    return "text"
