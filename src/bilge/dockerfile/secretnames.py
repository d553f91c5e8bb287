"""Does a variable name, a value, or a file name look like a credential?

Names and values are decided by ``bilge secrets``' own rules (``bilge.secrets.names`` with the built-in
ruleset's ``[names]`` data, and its format rules for token shapes), so ``bilge lint`` and ``bilge secrets``
agree on what a secret looks like. What is kept here is what only a Dockerfile needs:

* names that carry a credential in a URL or connection string without saying so (``PIP_EXTRA_INDEX_URL``,
  ``DATABASE_URL``, ``*_CONNECTION_STRING`` ...) and the key id of an AWS credential pair. ``ARG NAME``
  without a default records whatever ``--build-arg`` passes, so the name alone is enough; ``bilge secrets``
  sees values instead, and judges such a value by its content (a URL with a password is a format rule);
* the user's ``secret-names`` / ``allow-names`` settings;
* short labels for the token kinds in lint's messages, and credential files by name (``.npmrc``, ``id_rsa`` ...).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from functools import lru_cache

from bilge.redact import mask as _redact_mask
from bilge.secrets.names import is_secret_name, value_kind
from bilge.secrets.rules import NameRules, Ruleset

# names whose value carries a credential (inside a URL or a connection string) without a secret word
_CARRIERS = (
    re.compile(r"^(PIP|UV|PIPENV|POETRY)_(EXTRA_)?(INDEX|PYPI)_URL$"),
    re.compile(r"^([A-Z0-9]+_)*(DATABASE|DB|REDIS|MONGO|MONGODB|AMQP|RABBITMQ|POSTGRES|MYSQL|CACHE)_(URL|URI|DSN)$"),
    re.compile(r"^([A-Z0-9]+_)*CONNECTION_STRING$"),
    re.compile(r"^GOPROXY$"),
    re.compile(r"^AWS_ACCESS_KEY_ID$"),  # half of a credential pair, recorded next to its secret
)
# lint's short labels for the kinds of token bilge secrets' format rules find (by rule id); others: the rule title
_LABELS = (
    ("github-", "GitHub token"), ("gitlab-", "GitLab token"), ("aws-access-key-id", "AWS access key id"),
    ("aws-secret-access-key", "AWS secret access key"), ("slack-token", "Slack token"), ("stripe-", "Stripe key"),
    ("npm-token", "npm token"), ("pypi-token", "PyPI token"), ("gcp-api-key", "Google API key"),
    ("huggingface-token", "Hugging Face token"), ("openai-api-key", "OpenAI key"), ("dockerhub-pat", "Docker Hub token"),
    ("private-key", "private key"), ("basic-auth-url", "URL with a password"),
)


@lru_cache(maxsize=1)
def _ruleset() -> Ruleset:
    from bilge.secrets.rules import load_ruleset

    return load_ruleset()


def _names() -> NameRules:
    return _ruleset().names


@lru_cache(maxsize=1)
def _scanner():
    from bilge.secrets.textscan import Scanner

    return Scanner(_ruleset())


def secret_name(name: str, extra: Iterable[str] = (), allow: Iterable[str] = ()) -> str | None:
    """Why the variable name looks like a credential, or None."""
    if any(fnmatch.fnmatchcase(name.upper(), p.upper()) for p in allow):
        return None
    if any(fnmatch.fnmatchcase(name.upper(), p.upper()) for p in extra):
        return "listed in secret-names"
    up = name.upper()
    if any(rx.match(up) for rx in _CARRIERS):
        return "carries a credential"
    if is_secret_name(name, _names()):
        return "carries a credential" if _names().always_credential(name) else "name looks secret"
    return None


def _label(rule_id: str, title: str) -> str:
    for prefix, label in _LABELS:
        if rule_id.startswith(prefix):
            return label
    return title


def _hits(text: str, names: bool):
    from bilge.secrets.textscan import NO_NAMES, SHELL

    return _scanner().scan(text.encode("utf-8", "surrogateescape"), SHELL if names else NO_NAMES)


@lru_cache(maxsize=4096)
def secret_value(value: str) -> str | None:
    """Why a literal value looks like a credential (a token shape, a URL with a password), or None."""
    for h in _hits(value, names=False):
        return _label(h.rule_id, h.title)
    return None


def literal_credentials(text: str) -> list[tuple[str, str]]:
    """(kind, value) for every literal credential in free text (a RUN line, a LABEL, a heredoc)."""
    out = []
    for h in _hits(text, names=True):
        out.append((f"{h.key} value" if h.named and h.key else _label(h.rule_id, h.title), h.secret))
    return out


def harmless_value(value: str | None, name: str = "") -> bool:
    """A value that cannot be the secret itself: boolean, number, path, plain URL, placeholder, reference."""
    if value is None:
        return False
    return secret_value(value) is None and value_kind(value, _names(), name) is None


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
