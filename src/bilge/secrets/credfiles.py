"""Credential files recognised by path, then parsed by content.

A ``.netrc``, ``.npmrc`` or ``.docker/config.json`` holds credentials in a format of its own,
often with no recognisable token shape (a password in a ``.netrc`` is just a word). Each
recogniser names the paths it applies to and parses the content; the general text scan still
runs on the same file (overlapping results are merged).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bilge.secrets.hit import Hit
from bilge.secrets.names import value_kind

if TYPE_CHECKING:
    from bilge.secrets.rules import NameRules

MAX_CREDFILE = 1 << 20  # credential files are small; read at most this much of one


@dataclass(frozen=True)
class FileRule:
    id: str
    title: str
    severity: str
    paths: tuple[re.Pattern[str], ...]
    parse: Callable[[bytes, NameRules], Iterator[tuple[int, int, str | None, str]]]
    binary: bool = False  # recognised without reading text (keystores)
    fix: str = ""

    def matches(self, path: str) -> bool:
        return any(p.search(path) for p in self.paths)


def _p(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


def _literal(value: str, names: NameRules, key: str = "") -> bool:
    return value_kind(value, names, key) is not None


# Each parser yields (start, end, key, note) for every credential value in the content.

_NETRC_TOKEN = re.compile(rb"\S+")


def _netrc(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
    tokens = list(_NETRC_TOKEN.finditer(data))
    machine = None
    i = 0
    while i < len(tokens):
        word = tokens[i].group()
        if word in (b"machine", b"default"):
            machine = tokens[i + 1].group().decode("utf-8", "replace") if word == b"machine" and i + 1 < len(tokens) else "default"
        elif word in (b"password", b"passwd", b"account") and i + 1 < len(tokens):
            m = tokens[i + 1]
            if _literal(m.group().decode("utf-8", "replace"), names):
                yield m.start(), m.end(), f"machine {machine}" if machine else None, ""
            i += 1
        elif word == b"macdef":
            # skip the macro body up to a blank line
            nxt = data.find(b"\n\n", tokens[i].end())
            while i + 1 < len(tokens) and (nxt < 0 or tokens[i + 1].start() < nxt):
                i += 1
        i += 1


_URL_CRED = re.compile(rb"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,20})://(?P<user>[^\s:/@]{1,256}):(?P<pw>[^\s/@]{1,512})@(?P<host>[^\s/:]{1,255})")


def _git_credentials(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
    for m in _URL_CRED.finditer(data):
        pw = m.group("pw").decode("utf-8", "replace")
        user = m.group("user").decode("utf-8", "replace")
        if pw == "x-oauth-basic":  # the token is the user part
            yield m.start("user"), m.end("user"), m.group("host").decode("utf-8", "replace"), ""
        elif _literal(pw, names) or pw.startswith(("ghp_", "gho_", "ghs_", "glpat-")):
            yield m.start("pw"), m.end("pw"), f"{user}@{m.group('host').decode('utf-8', 'replace')}", ""


_INI_LINE = re.compile(rb"^[ \t]*(?P<key>[^=:#;\s\[][^=:\r\n]{0,200}?)[ \t]*[=:][ \t]*(?P<value>[^\r\n]*?)[ \t]*$", re.M)


def _ini_keys(keys: tuple[bytes, ...], *, contains: bool = False):
    def parse(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
        for m in _INI_LINE.finditer(data):
            key = m.group("key").strip().lower()
            hit = any(k in key for k in keys) if contains else key in keys
            if not hit:
                continue
            value = m.group("value")
            s, e = m.start("value"), m.end("value")
            if len(value) >= 2 and value[:1] == value[-1:] and value[:1] in (b'"', b"'"):
                s, e = s + 1, e - 1
            v = data[s:e].decode("utf-8", "replace")
            if v and _literal(v, names, key.decode("utf-8", "replace")):
                yield s, e, m.group("key").strip().decode("utf-8", "replace"), ""
    return parse


_NPMRC_LINE = re.compile(rb"^[ \t]*(?P<key>[^=#;\s][^=\r\n]{0,300}?)[ \t]*=[ \t]*(?P<value>[^\r\n]*?)[ \t]*$", re.M)


def _npmrc(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
    for m in _NPMRC_LINE.finditer(data):
        key = m.group("key").strip()
        leaf = key.rsplit(b":", 1)[-1].lower() if key.startswith(b"//") else key.lower()
        if leaf not in (b"_authtoken", b"_auth", b"_password", b"password", b"authtoken"):
            continue
        s, e = m.start("value"), m.end("value")
        value = data[s:e]
        if len(value) >= 2 and value[:1] == value[-1:] and value[:1] in (b'"', b"'"):
            s, e = s + 1, e - 1
        v = data[s:e].decode("utf-8", "replace")
        if v and _literal(v, names):
            yield s, e, key.decode("utf-8", "replace"), ""
    # yarn 2+ (.yarnrc.yml): npmAuthToken / npmAuthIdent
    yield from _yaml_keys(lambda k: k.lower() in ("npmauthtoken", "npmauthident"))(data, names)


_YAML_KV = re.compile(rb"""^[ \t]*-?[ \t]*(?P<key>:?["']?[A-Za-z0-9_.\-]{1,120}["']?)[ \t]*:[ \t]+(?P<value>[^\r\n#]*?)[ \t]*(?:[ \t]#[^\r\n]*)?$""", re.M)


def _yaml_keys(pred: Callable[[str], bool], *, erb_ok: bool = False):
    def parse(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
        for m in _YAML_KV.finditer(data):
            key = m.group("key").strip(b":\"'").decode("utf-8", "replace")
            if not pred(key):
                continue
            s, e = m.start("value"), m.end("value")
            value = data[s:e]
            if len(value) >= 2 and value[:1] == value[-1:] and value[:1] in (b'"', b"'"):
                s, e = s + 1, e - 1
            v = data[s:e].decode("utf-8", "replace").strip()
            if not v or v in ("|", ">", "|-", ">-") or (not erb_ok and "<%" in v):
                continue
            if _literal(v, names, key):
                yield s, e, key, ""
    return parse


_BUNDLE_NOT_HOSTS = ("BUNDLE_BUILD__", "BUNDLE_MIRROR__", "BUNDLE_LOCAL__", "BUNDLE_DISABLE_", "BUNDLE_SPECIFIC_PLATFORM")


def _is_bundle_host_key(key: str) -> bool:
    return (key.startswith("BUNDLE_") and "__" in key[7:] and not key.startswith(_BUNDLE_NOT_HOSTS))


def _docker_config(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(doc, dict):
        return
    auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else doc  # legacy .dockercfg
    for host, entry in (auths or {}).items():
        if not isinstance(entry, dict):
            continue
        for field in ("auth", "password", "identitytoken", "registrytoken"):
            value = entry.get(field)
            if not isinstance(value, str) or not value:
                continue
            if field == "auth":
                try:
                    decoded = base64.b64decode(value, validate=True).decode("utf-8", "replace")
                except (binascii.Error, ValueError):
                    decoded = ""
                if not decoded or decoded.endswith(":") or decoded == ":":
                    continue
            raw = json.dumps(value)[1:-1].encode()
            pos = data.find(raw)
            if pos < 0:
                continue
            yield pos, pos + len(raw), f"{host} {field}", ""


def _pgpass(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
    for m in re.finditer(rb"^(?P<h>[^#\r\n:]*):(?P<p>[^\r\n:]*):(?P<d>[^\r\n:]*):(?P<u>[^\r\n:]*):(?P<pw>[^\r\n]+)$", data, re.M):
        pw = m.group("pw").decode("utf-8", "replace")
        if _literal(pw, names):
            yield m.start("pw"), m.end("pw"), f"{m.group('u').decode('utf-8', 'replace')}@{m.group('h').decode('utf-8', 'replace')}", ""


def _shadow(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
    for m in re.finditer(rb"^(?P<u>[^:\r\n]+):(?P<h>[^:\r\n]*):", data, re.M):
        h = m.group("h")
        if h.startswith(b"$") or (len(h) == 13 and re.fullmatch(rb"[./A-Za-z0-9]{13}", h)):
            yield m.start("h"), m.end("h"), m.group("u").decode("utf-8", "replace"), "a password hash: crackable offline"


def _htpasswd(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
    for m in re.finditer(rb"^(?P<u>[^:#\r\n]+):(?P<h>[^\r\n]{4,})$", data, re.M):
        yield m.start("h"), m.end("h"), m.group("u").decode("utf-8", "replace"), "a password hash: crackable offline"


def _whole_token(pattern: bytes):
    rx = re.compile(pattern)

    def parse(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
        m = rx.match(data)
        if m:
            yield m.start(1), m.end(1), None, ""
    return parse


def _pkcs12(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
    if data[:1] == b"\x30" and len(data) > 64:  # a DER SEQUENCE
        yield 0, 0, None, "a PKCS#12 bundle usually holds a private key; its password protects it"


def _git_config(data: bytes, names: NameRules) -> Iterator[tuple[int, int, str | None, str]]:
    yield from _git_credentials(data, names)
    for m in re.finditer(rb"(?im)^[ \t]*extraheader[ \t]*=[ \t]*\"?authorization:[ \t]*(?:basic|bearer|token)[ \t]+(?P<v>[A-Za-z0-9+/=._~-]{8,})", data):
        if _literal(m.group("v").decode("ascii", "replace"), names):
            yield m.start("v"), m.end("v"), "http.extraheader", ""


def _lower_has(*parts: str) -> Callable[[str], bool]:
    return lambda key: any(p in key.lower() for p in parts)


FILE_RULES: tuple[FileRule, ...] = (
    FileRule("netrc", ".netrc credentials (machine/login/password)", "high",
             _p(r"(?:^|/)[._]netrc$"), _netrc,
             fix="Use `RUN --mount=type=secret,id=netrc,target=/root/.netrc` so the file never enters a layer."),
    FileRule("git-credentials", "git credential store (.git-credentials)", "high",
             _p(r"(?:^|/)\.git-credentials$", r"(?:^|/)\.config/git/credentials$"), _git_credentials,
             fix="Use a secret mount or a credential helper that is not part of the image."),
    FileRule("git-config-credential", "credential in a git config (remote URL or http.extraheader)", "high",
             _p(r"(?:^|/)\.git/config$", r"(?:^|/)\.gitconfig$", r"^etc/gitconfig$", r"(?:^|/)\.config/git/config$"), _git_config,
             fix="Clone with a secret mount; remove the credential from the remote URL (`git remote set-url`)."),
    FileRule("npmrc-auth", "npm registry credential in .npmrc", "high",
             _p(r"(?:^|/)\.npmrc$", r"(?:^|/)etc/npmrc$", r"(?:^|/)\.yarnrc(?:\.yml)?$"), _npmrc,
             fix="Use `RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci`."),
    FileRule("pypirc-password", "PyPI upload credential in .pypirc", "high",
             _p(r"(?:^|/)\.pypirc$"), _ini_keys((b"password",))),
    FileRule("gem-credentials", "RubyGems API key in .gem/credentials", "high",
             _p(r"(?:^|/)\.gem/credentials$", r"(?:^|/)\.local/share/gem/credentials$"),
             _yaml_keys(_lower_has("api_key"))),
    FileRule("bundler-credentials", "Bundler per-host credential (BUNDLE_<HOST>)", "high",
             _p(r"(?:^|/)\.bundle/config$", r"^usr/local/bundle/config$", r"(?:^|/)bundle/config$"),
             _yaml_keys(_is_bundle_host_key),
             fix="Pass BUNDLE_<HOST> through a secret mount, never `bundle config` it into the image."),
    FileRule("docker-config-auth", "registry credential in a Docker config.json", "high",
             _p(r"(?:^|/)\.docker/config\.json$", r"(?:^|/)\.dockercfg$", r"(?:^|/)containers/auth\.json$"),
             _docker_config, fix="Log in at run time or use a credential helper; never copy ~/.docker into an image."),
    FileRule("aws-credentials-file", "AWS credentials file", "critical",
             _p(r"(?:^|/)\.aws/credentials$", r"(?:^|/)\.aws/config$"),
             _ini_keys((b"aws_secret_access_key", b"aws_session_token"))),
    FileRule("kubeconfig-credential", "credential in a kubeconfig", "high",
             _p(r"(?:^|/)\.kube/config$", r"(?:^|/)kubeconfig(?:\.ya?ml)?$"),
             _yaml_keys(lambda k: k.lower() in ("token", "client-key-data", "password", "client-secret",
                                                "id-token", "refresh-token", "access-token"))),
    FileRule("database-yml-password", "literal password in database.yml", "high",
             _p(r"(?:^|/)database\.ya?ml$"), _yaml_keys(lambda k: k.lower() in ("password", "passwd", "pass"))),
    FileRule("rails-secrets-yml", "literal secret in Rails secrets.yml", "high",
             _p(r"(?:^|/)secrets\.ya?ml$"),
             _yaml_keys(_lower_has("secret", "password", "token", "api_key", "private_key"))),
    FileRule("rails-master-key", "Rails master key (decrypts credentials.yml.enc)", "critical",
             _p(r"(?:^|/)config/master\.key$", r"(?:^|/)config/credentials/[^/]+\.key$"),
             _whole_token(rb"\s*([0-9a-f]{32})\s*$")),
    FileRule("pgpass", "PostgreSQL password file (.pgpass)", "high", _p(r"(?:^|/)\.pgpass$"), _pgpass),
    FileRule("mysql-client-password", "MySQL client password (.my.cnf)", "high",
             _p(r"(?:^|/)\.my\.cnf$", r"(?:^|/)\.mylogin\.cnf$", r"^etc/mysql/debian\.cnf$"),
             _ini_keys((b"password",))),
    FileRule("vault-token-file", "HashiCorp Vault token file", "high",
             _p(r"(?:^|/)\.vault-token$"), _whole_token(rb"\s*(\S{16,512})\s*$")),
    FileRule("shadow-password-hash", "account with a password hash in /etc/shadow", "medium",
             _p(r"^etc/shadow-?$"), _shadow,
             fix="Do not set account passwords in an image; lock the account (`passwd -l`)."),
    FileRule("htpasswd", "password hashes in an .htpasswd file", "medium", _p(r"(?:^|/)\.htpasswd$"), _htpasswd),
    FileRule("pkcs12-keystore", "PKCS#12 keystore (.p12/.pfx)", "medium", _p(r"\.(?:p12|pfx)$"), _pkcs12, binary=True,
             fix="Mount keystores at run time instead of baking them into the image."),
)


# A cheap gate before the path regexes: every recognised path ends in one of these basenames or
# suffixes (checked by test_secrets_credfiles).
GATE_NAMES = frozenset({
    ".netrc", "_netrc", ".git-credentials", "credentials", "config", ".gitconfig", "gitconfig", ".npmrc",
    "npmrc", ".yarnrc", ".yarnrc.yml", ".pypirc", "config.json", ".dockercfg", "auth.json", "kubeconfig",
    "kubeconfig.yaml", "kubeconfig.yml", "database.yml", "database.yaml", "secrets.yml", "secrets.yaml",
    ".pgpass", ".my.cnf", ".mylogin.cnf", "debian.cnf", ".vault-token", "shadow", "shadow-", ".htpasswd",
})
GATE_SUFFIXES = (".key", ".p12", ".pfx")


def recognise(path: str, disabled: frozenset[str] = frozenset()) -> list[FileRule]:
    """The credential-file rules whose paths match ``path``."""
    base = path.rpartition("/")[2]
    if base not in GATE_NAMES and not base.endswith(GATE_SUFFIXES):
        return []
    return [r for r in FILE_RULES if r.id not in disabled and r.matches(path)]


def parse_credfile(rule: FileRule, data: bytes, names: NameRules) -> list[Hit]:
    out = []
    for start, end, key, note in rule.parse(data, names):
        secret = data[start:end].decode("utf-8", "replace") if end > start else "(binary keystore)"
        out.append(Hit(rule.id, rule.title, rule.severity, secret, start, end, key=key, reveal=2,
                       fix=rule.fix, note=note))
    return out
