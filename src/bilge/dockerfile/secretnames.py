"""Does a variable name, a value, or a file name look like a credential?

A deliberately small heuristic for Dockerfiles, kept in the spirit of ``bilge secrets``'s rules (which
scan image contents and are independent of this module):

* names: the ``_``-separated words BuildKit's own ``SecretsUsedInArgOrEnv`` check uses (apikey, auth,
  credential(s), key, password, passwd, pword, secret, token) plus pass/pwd/passphrase/private, with the
  known false positives removed: public keys and fingerprints (``GPG_KEY``, ``PUBLIC_KEY``), settings that
  only describe a secret (``TOKEN_URL``, ``PASSWORD_FILE``, ``AUTH_HOST``), Rails' ``SECRET_KEY_BASE_DUMMY``;
  plus names that carry a credential without saying so (Bundler's ``BUNDLE_GITHUB__COM``, pip's
  ``PIP_EXTRA_INDEX_URL``, ``DATABASE_URL`` ...).
* values: well-known token shapes (GitHub, GitLab, AWS, Slack, Stripe, npm, PyPI, Google, private keys) and
  URLs with a password in them; booleans, numbers, paths and plain URLs are never secrets.
* files: credential files by name (``.npmrc``, ``.netrc``, ``id_rsa``, ``.env``, ``*.pem`` ...).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from bilge.redact import mask as _redact_mask

_SECRET_WORDS = frozenset({
    "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PWORD", "PASS", "PASSPHRASE", "PWD", "TOKEN",
    "TOKENS", "APIKEY", "APIKEYS", "CREDENTIAL", "CREDENTIALS", "CREDS", "AUTH", "AUTHTOKEN", "PRIVATE",
})
_SUBSTRINGS = ("SECRET", "PASSWORD", "PASSWD", "TOKEN", "APIKEY", "CREDENTIAL", "AUTHTOKEN", "PRIVATEKEY")
_DENY_WORDS = frozenset({"PUBLIC", "PUB", "FINGERPRINT", "FINGERPRINTS", "FPR", "GPG", "PGP", "GNUPG", "DUMMY",
                         "EXAMPLE", "SAMPLE", "PLACEHOLDER", "FAKE", "KEYRING", "KEYSERVER", "SIGNATURE"})
# a secret word followed by one of these names a setting about the secret, not the secret itself
_DESCRIPTIVE_TAIL = frozenset({
    "URL", "URI", "ENDPOINT", "HOST", "HOSTNAME", "PORT", "PATH", "FILE", "FILES", "DIR", "DIRECTORY", "NAME",
    "TYPE", "LENGTH", "LEN", "TTL", "EXPIRY", "EXPIRES", "EXPIRATION", "TIMEOUT", "HEADER", "ENABLED",
    "DISABLED", "ENABLE", "DISABLE", "MODE", "VERSION", "REGION", "USER", "USERNAME", "FORMAT", "ALGORITHM",
    "ALG", "SIZE", "COUNT", "ISSUER", "AUDIENCE", "SCOPE", "SCOPES", "PREFIX", "LOCATION", "PROVIDER",
    "METHOD", "ID", "IDS", "ARN", "REF", "KIND", "STORE", "BACKEND", "SERVER", "SERVICE", "STRATEGY",
    "REQUIRED", "POLICY", "MIN", "MAX", "LIFETIME", "ROTATION",
})
_KEY_QUALIFIERS = frozenset({
    "API", "ACCESS", "SECRET", "PRIVATE", "MASTER", "SIGNING", "ENCRYPTION", "LICENSE", "LICENCE", "DEPLOY",
    "SSH", "CLIENT", "APP", "SERVICE", "ACCOUNT", "AUTH", "SESSION", "CRYPT", "CIPHER", "HMAC", "JWT",
    "WEBHOOK", "STRIPE", "SENDGRID", "MAILGUN", "OPENAI", "ANTHROPIC", "TWILIO", "ALGOLIA", "SENTRY",
    "DATADOG", "DD", "NEWRELIC", "PUSHER", "RECAPTCHA", "MAPS", "FIREBASE", "ADMIN", "ROOT", "RSA", "TLS",
    "SSL", "STORAGE", "S3", "AWS", "GCP", "AZURE", "SAS", "SHARED", "SUBSCRIPTION", "PERSONAL",
})
# names that carry a credential in their value without a secret word in the name
_CARRIERS = (
    re.compile(r"^BUNDLE_[A-Z0-9_]*__[A-Z0-9_]+$"),  # Bundler host credentials: BUNDLE_GITHUB__COM
    re.compile(r"^NPM_CONFIG_(_AUTH|_PASSWORD|//.*)$", re.I),
    re.compile(r"^(PIP|UV|PIPENV|POETRY)_(EXTRA_)?(INDEX|PYPI)_URL$"),
    re.compile(r"^POETRY_HTTP_BASIC_.*_PASSWORD$"),
    re.compile(r"^([A-Z0-9]+_)*(DATABASE|DB|REDIS|MONGO|MONGODB|AMQP|RABBITMQ|POSTGRES|MYSQL|CACHE)_(URL|URI|DSN)$"),
    re.compile(r"^([A-Z0-9]+_)*CONNECTION_STRING$"),
    re.compile(r"^GIT_CREDENTIALS$"),
    re.compile(r"^GOPROXY$"),
)
_BOOLISH = frozenset({"", "0", "1", "true", "false", "yes", "no", "on", "off", "none", "null", "nil", "unset",
                      "disabled", "enabled", "dummy", "placeholder", "example", "changeme-not-used", "redacted",
                      "-", "xxx", "xxxx", "***", "...", "todo", "tbd"})

TOKEN_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
    ("GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}\b")),
    ("AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("Stripe live key", re.compile(r"\b[rs]k_live_[A-Za-z0-9]{20,}\b")),
    ("npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("PyPI token", re.compile(r"\bpypi-AgE[A-Za-z0-9_\-]{50,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{34,}\b")),
    ("OpenAI key", re.compile(r"\bsk-(proj-)?[A-Za-z0-9_\-]{32,}\b")),
    ("Docker Hub token", re.compile(r"\bdckr_pat_[A-Za-z0-9_\-]{20,}\b")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
)
_URL_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.\-]*)://([^/\s:@'\"]+):([^@\s/'\"]+)@", re.I)
_AUTH_ASSIGN = re.compile(r"(_authToken|_auth|_password|password|passwd|token|apikey|api_key|secret)\s*[=:]\s*"
                          r"['\"]?([^\s'\"]+)", re.I)


def words(name: str) -> list[str]:
    return [w for w in re.split(r"[_\-.]+", name.upper()) if w]


def secret_name(name: str, extra: Iterable[str] = (), allow: Iterable[str] = ()) -> str | None:
    """Why the variable name looks like a credential, or None."""
    if any(fnmatch.fnmatchcase(name.upper(), p.upper()) for p in allow):
        return None
    if any(fnmatch.fnmatchcase(name.upper(), p.upper()) for p in extra):
        return "listed in secret-names"
    up = name.upper()
    for rx in _CARRIERS:
        if rx.match(up):
            return "carries a credential"
    ws = words(name)
    if not ws or set(ws) & _DENY_WORDS:
        return None
    if up == "PWD" or up == "KEY":
        return None
    hit: int | None = None
    for i, w in enumerate(ws):
        if w in _SECRET_WORDS and not (w == "PASS" and i == 0 and len(ws) == 1):
            hit = i
        elif w in ("KEY", "KEYS"):
            before = set(ws[:i])
            if before & _KEY_QUALIFIERS or (i == len(ws) - 1 and i > 0) or ws[i + 1:] in (["BASE"], ["ID"]):
                hit = i
        elif any(s in w for s in _SUBSTRINGS) and not w.startswith("TOKENIZER"):
            hit = i
    if hit is None:
        return None
    tail = ws[hit + 1:]
    if tail and tail[-1] in _DESCRIPTIVE_TAIL and not (ws[hit] in ("KEY", "KEYS") and tail == ["ID"]
                                                        and "ACCESS" in ws):
        return None
    return "name looks secret"


def secret_value(value: str) -> str | None:
    """Why a literal value looks like a credential (a token shape, a URL with a password), or None."""
    for label, rx in TOKEN_SHAPES:
        if rx.search(value):
            return label
    for m in _URL_PASSWORD.finditer(value):
        pw = m.group(3)
        if not is_placeholder(pw) and "$" not in pw:
            return "URL with a password"
    return None


def literal_credentials(text: str) -> list[tuple[str, str]]:
    """(kind, value) for every literal credential in free text (a RUN line, a LABEL, a heredoc)."""
    out: list[tuple[str, str]] = []
    for label, rx in TOKEN_SHAPES:
        for m in rx.finditer(text):
            out.append((label, m.group(0)))
    for m in _URL_PASSWORD.finditer(text):
        pw = m.group(3)
        if not is_placeholder(pw) and "$" not in pw and "<" not in pw and "%" not in pw:
            out.append(("URL with a password", m.group(0)))
    for m in _AUTH_ASSIGN.finditer(text):
        val = m.group(2)
        if ("$" in val or "<%" in val or "{{" in val or is_placeholder(val) or len(val) < 8
                or not re.search(r"\d", val) or not re.search(r"[A-Za-z]", val)):
            continue
        out.append((f"{m.group(1)} value", val))
    return out


def is_placeholder(value: str) -> bool:
    v = value.strip().strip("'\"").lower()
    return (v in _BOOLISH or (v.startswith("<") and v.endswith(">")) or (v.startswith("${") and v.endswith("}"))
            or set(v) <= set("x*.-_") or v in ("password", "secret", "token", "changeme", "your-token-here"))


def harmless_value(value: str | None) -> bool:
    """A value that cannot be the secret itself: boolean, number, path, plain URL, placeholder."""
    if value is None:
        return False
    v = value.strip().strip("'\"")
    if is_placeholder(v) or re.fullmatch(r"-?\d{1,6}", v):
        return True
    if v.startswith(("/", "./", "../", "~/")) and " " not in v and secret_value(v) is None:
        return True
    if re.match(r"^[a-z][a-z0-9+.\-]*://", v, re.I) and secret_value(v) is None and not _URL_PASSWORD.search(v):
        return True
    return False


def mask(value: str, show: bool = False) -> str:
    """A few leading characters and the length (``bilge.redact.mask``): ``ghp_…(40 chars)``."""
    return value if show else _redact_mask(value)


# --- credential files -------------------------------------------------------------------------------------

# (glob on the file's path relative to its copy root or its base name, label)
CREDENTIAL_FILES: tuple[tuple[str, str], ...] = (
    (".npmrc", "npm credentials"), (".yarnrc", "yarn credentials"), (".netrc", "netrc credentials"),
    ("_netrc", "netrc credentials"), (".pypirc", "PyPI credentials"), (".git-credentials", "git credentials"),
    (".env", "dotenv file"), (".env.*", "dotenv file"), ("*.env", "dotenv file"),
    ("id_rsa", "SSH private key"), ("id_dsa", "SSH private key"), ("id_ecdsa", "SSH private key"),
    ("id_ed25519", "SSH private key"), ("master.key", "Rails master key"), ("*.pem", "PEM key or certificate"),
    ("*.key", "private key"),
    ("*.p12", "PKCS#12 keystore"), ("*.pfx", "PKCS#12 keystore"), ("*.jks", "Java keystore"),
    ("*.keystore", "keystore"), (".pgpass", "PostgreSQL passwords"), (".my.cnf", "MySQL credentials"),
    (".htpasswd", "htpasswd"), ("credentials.json", "credentials file"), ("*credentials*.json", "credentials file"),
    ("client_secret*.json", "OAuth client secret"), ("service-account*.json", "service account key"),
    ("*-sa-key.json", "service account key"),
    ("*.tfvars", "Terraform variables"), ("terraform.tfstate", "Terraform state"), ("kubeconfig", "kubeconfig"),
    ("secrets.yml", "secrets file"), ("secrets.yaml", "secrets file"), ("secrets.json", "secrets file"),
    ("*.ovpn", "VPN profile"), ("vault-token", "Vault token"), (".vault-token", "Vault token"),
)
CREDENTIAL_PATHS: tuple[tuple[str, str], ...] = (
    (".aws/credentials", "AWS credentials"), (".aws/config", "AWS config"), (".aws", "AWS credentials"),
    (".docker/config.json", "Docker registry credentials"), (".kube/config", "kubeconfig"), (".kube", "kubeconfig"),
    (".ssh", "SSH keys"), (".gnupg", "GnuPG keyring"), (".m2/settings.xml", "Maven settings (repository passwords)"),
    (".m2/settings-security.xml", "Maven master password"), (".gradle/gradle.properties", "Gradle credentials"),
    (".gem/credentials", "RubyGems credentials"), (".config/gcloud", "gcloud credentials"),
    (".azure", "Azure credentials"), (".git-credentials", "git credentials"),
)
_NOT_CREDENTIAL = (".env.example", ".env.sample", ".env.template", ".env.dist", ".env.defaults", ".env.test.example",
                   "*.pub", "*.env.example", "*.example", "*.sample", "*.template", "*.dist", "*.tmpl")


def credential_file(path: str) -> str | None:
    """The kind of credential file ``path`` names (a context-relative or absolute path), or None."""
    p = path.strip().strip("/")
    if not p or p in (".", ".."):
        return None
    base = p.rsplit("/", 1)[-1]
    if any(fnmatch.fnmatchcase(base, pat) for pat in _NOT_CREDENTIAL):
        return None
    for pat, label in CREDENTIAL_PATHS:
        if p == pat or p.endswith("/" + pat):
            return label
    for pat, label in CREDENTIAL_FILES:
        if fnmatch.fnmatchcase(base, pat):
            return label
    return None
