"""Name rules: is this variable name secret-like, and is its value a real literal?

``DB_PASSWORD=hunter2`` has no known format, so only the name says it is a secret. These
functions decide (1) whether a name is secret-like, from its words, minus well-known non-secrets
(``GPG_KEY``, ``*_VERSION``, ``*_URL`` ...), and (2) whether the value is a literal worth
reporting — not empty, not a ``$VAR`` reference, not a placeholder, not a version pin — and how
strong it looks (length and Shannon entropy).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bilge.secrets.rules import NameRules


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def name_words(name: str) -> list[str]:
    """``dbPassword`` -> [db, password]; ``AWS_SECRET_ACCESS_KEY`` -> [aws, secret, access, key]."""
    words: list[str] = []
    for part in _SPLIT.split(name):
        if not part:
            continue
        if part.isupper() or part.islower() or part.isdigit():
            words.append(part.lower())
        else:
            words.extend(w.lower() for w in _CAMEL.findall(part))
    return words


def is_secret_name(name: str, rules: NameRules) -> bool:
    """True when ``name`` says its value is a secret (TOKEN, DB_PASSWORD, apiKey, _authToken ...)."""
    if not name or len(name) > 120:
        return False
    if rules.excluded(name):
        return False
    if rules.always_credential(name):
        return True
    words = name_words(name)
    if not words:
        return False
    joined = "".join(words)
    if joined in rules.words:
        return True
    if any(w in rules.words for w in words):
        # "pass" and "pwd" only as whole words, and a name that is just PWD is the working dir
        return True
    # compounds written as one word: apikey, authtoken, secretkey, dbpassword, passwd in mypasswd
    for w in words:
        for sw in ("password", "passwd", "passphrase", "secret", "token", "apikey", "privatekey",
                   "secretkey", "accesskey", "credential"):
            if sw in w and not w.startswith(("tokeniz", "secretar")):
                return True
    last = words[-1]
    if last in ("key", "keys") and len(words) >= 2 and words[-2] in rules.key_qualifiers:
        return True
    low = name.lower().lstrip("-")
    if last == "auth" and (len(words) == 1 or low in rules.auth_alone or words[-2] in ("basic", "http", "npm", "proxy")):
        return True
    return False


def shannon_entropy(value: str) -> float:
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_VERSION = re.compile(r"^v?[0-9]+(?:[.][0-9A-Za-z]+)+(?:[-+~][0-9A-Za-z.~+-]*)?$|^[0-9]+[-+~:][0-9][0-9A-Za-z.~+:-]*$")
_NUMBER = re.compile(r"^[0-9]{1,6}$")
_INTERPOLATION = re.compile(r"\$[A-Za-z_{(@]|\\\$|%\([A-Za-z_]+\)s")  # $VAR, ${..}, $(..), \$, %(name)s
_SAME_CHAR = re.compile(r"^(.)\1+$")
_REFERENCE = re.compile(r"^(?:\$[A-Za-z_{(]|%[A-Za-z_]+%$|\{\{|<%|#\{|@[A-Za-z_]+@$|!Ref\b|!Sub\b|ENC\[)")
_CODEISH = re.compile(
    r"^(?:[A-Za-z_][A-Za-z0-9_]*\s*\(|(?:os\.|process\.|ENV\[|env\(|getenv|config\.|settings\.|self\.|this\.|System\.)|"
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$)"
)
_PATHISH = re.compile(r"^(?:/|\./|\.\./|~/|file:|[A-Za-z]:\\)[^\s]*$")
_URL_NO_CREDS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*(?:[/?#][^\s]*)?$")


def value_kind(value: str, rules: NameRules, name: str = "") -> str | None:
    """``None`` when ``value`` is not a reportable literal, else ``"weak"`` or ``"strong"``.

    Not reportable: empty, a reference (``$VAR``, ``${VAR}``, ``{{ .x }}``, ``<%= ... %>``), a
    placeholder (``changeme``, ``<password>``, ``xxxx``, ``your_token``, the name itself), a
    version pin (``1.2.3``, ``2:1.0-1``), a short number (ports, timeouts), a path or a URL
    without credentials (a file that *holds* the secret is not the secret), a code expression.
    Strong: long and random-looking (a generated token); weak: a short or human-chosen word.
    """
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'`":
        v = v[1:-1].strip()
    if not v or len(v) > 4096:
        return None
    low = v.lower()
    if low in rules.placeholders:
        return None
    if name and low in (name.lower(), name.lower().replace("_", "-")):
        return None
    if _REFERENCE.match(v) or _INTERPOLATION.search(v) or any(p in low for p in rules.placeholder_parts):
        return None
    if _SAME_CHAR.match(v) or _NUMBER.match(v) or _VERSION.match(v):
        return None
    if _PATHISH.match(v) or _URL_NO_CREDS.match(v):
        return None
    if _CODEISH.match(v):
        return None
    if low in ("[]", "{}", "()", "''", '""', "-", "--", ".", "*", "?", "=", ":", ";", "/", "\\"):
        return None
    if len(v) < 3:
        return None
    return "strong" if is_strong(v) else "weak"


def is_strong(value: str) -> bool:
    """Looks generated: long enough, high entropy, more than one character class."""
    n = len(value)
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value),
                   any(c.isdigit() for c in value), any(not c.isalnum() for c in value)))
    h = shannon_entropy(value)
    mixed = any(c.isdigit() for c in value) or any(c.isupper() for c in value)
    if n >= 20 and h >= 3.5 and mixed:
        return True
    # lower-case words joined by '-' (elevated-privileges) are prose, not a generated token
    return n >= 12 and h >= 3.0 and classes >= 2 and mixed
