"""Every format rule: a true positive and a near miss, on freshly generated fake values.

Fake tokens are generated here with the right shapes (prefix, alphabet, length); none is real.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

import pytest

from bilge.errors import BilgeError
from bilge.secrets import textscan
from bilge.secrets.precision import github_token
from bilge.secrets.rules import load_ruleset
from bilge.secrets.textscan import FILE_CONFIG, NO_NAMES, SHELL, KeywordIndex, Scanner
from bilge.secrets.tokens import npm_token, pypi_token

RNG = random.Random(20240607)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
UPPER32 = string.ascii_uppercase + "234567"
B64 = string.ascii_letters + string.digits + "+/"
URLSAFE = ALNUM + "_-"


def r(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def pem(kind: str = "RSA PRIVATE KEY", lines: int = 12, pre: str = "") -> str:
    body = "\n".join(r(B64, 64) for _ in range(lines))
    return f"-----BEGIN {kind}-----\n{pre}{body}\n-----END {kind}-----\n"


def openssh_key(cipher: str) -> str:
    raw = b"openssh-key-v1\0" + len(cipher).to_bytes(4, "big") + cipher.encode() + bytes(RNG.randrange(256) for _ in range(300))
    b64 = base64.b64encode(raw).decode()
    body = "\n".join(b64[i:i + 70] for i in range(0, len(b64), 70))
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"


# rule id -> (true positive text, the secret it must report, near-miss text)
Case = tuple[str, str, str]


def _cases() -> dict[str, Callable[[], Case]]:
    def simple(secret: str, near: str, fmt: str = "TOKEN_VALUE = {}\n") -> Case:
        return fmt.format(secret), secret, fmt.format(near)

    gh = lambda p: simple(github_token(f"{p}_", r(ALNUM, 30)), f"{p}_{r(ALNUM, 30)}")  # noqa: E731
    return {
        "github-pat": lambda: simple(github_token("ghp_", r(ALNUM, 30)), f"xghp_{r(ALNUM, 36)}"),
        "github-fine-grained-pat": lambda: simple(f"github_pat_{r(ALNUM, 22)}_{r(ALNUM, 59)}",
                                                  f"github_pat_{r(ALNUM, 22)}_{r(ALNUM, 20)}"),
        "github-oauth-token": lambda: gh("gho"),
        "github-app-token": lambda: gh("ghs"),
        "github-refresh-token": lambda: gh("ghr"),
        "github-oauth-basic": lambda: (lambda t: (f'BUNDLE_GITHUB__COM="{t}:x-oauth-basic"\n', t,
                                                   'BUNDLE_GITHUB__COM="$GITHUB_ACCESS_TOKEN:x-oauth-basic"\n'))(
            r(HEX, 40)),  # a classic 40-hex GitHub token (a ghp_ one is reported as github-pat)
        "gitlab-pat": lambda: simple(f"glpat-{r(URLSAFE, 20)}", f"glpat-{r(URLSAFE, 12)}"),
        "gitlab-ci-token": lambda: simple(f"glrt-{r(URLSAFE, 24)}", f"glrt-{r(URLSAFE, 8)}"),
        "aws-access-key-id": lambda: simple(f"AKIA{r(UPPER32, 16)}", "AKIAIOSFODNN7EXAMPLE"),
        "aws-secret-access-key": lambda: simple(r(B64, 40), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                                "aws_secret_access_key = {}\n"),
        "gcp-service-account-key": lambda: (lambda k: (
            json.dumps({"type": "service_account", "project_id": "demo", "private_key_id": r(HEX, 40),
                        "private_key": k, "client_email": "x@demo.iam.gserviceaccount.com"}, indent=2),
            k.replace("\n", "\\n"),
            json.dumps({"type": "authorized_user", "client_id": "x", "private_key": k})))(pem("PRIVATE KEY")),
        "gcp-api-key": lambda: simple(f"AIza{r(URLSAFE, 35)}", f"AIza{r(URLSAFE, 20)}"),
        "gcp-oauth-client-secret": lambda: simple(f"GOCSPX-{r(URLSAFE, 28)}", f"GOCSPX-{r(URLSAFE, 10)}"),
        "azure-storage-key": lambda: (lambda k: (
            f"DefaultEndpointsProtocol=https;AccountName=demo;AccountKey={k};EndpointSuffix=core.windows.net", k,
            "DefaultEndpointsProtocol=https;AccountName=demo;AccountKey=short==;"))(r(B64, 86) + "=="),
        "azure-ad-client-secret": lambda: simple(f"{r(ALNUM, 3)}8Q~{r(ALNUM, 34)}", f"{r(ALNUM, 3)}8Q~{r(ALNUM, 12)}"),
        "slack-token": lambda: simple(f"xoxb-{r(string.digits, 12)}-{r(string.digits, 12)}-{r(ALNUM, 24)}", "xoxb-12"),
        "slack-webhook": lambda: simple(f"https://hooks.slack.com/services/T{r(UPPER32, 8)}/B{r(UPPER32, 8)}/{r(ALNUM, 24)}",
                                        "https://hooks.slack.com/services/"),
        "stripe-secret-key": lambda: simple(f"sk_live_{r(ALNUM, 24)}", f"pk_live_{r(ALNUM, 24)}"),
        "stripe-test-key": lambda: simple(f"sk_test_{r(ALNUM, 24)}", f"pk_test_{r(ALNUM, 24)}"),
        "npm-token": lambda: simple(npm_token(r(ALNUM, 30)), "npm_config_cache_dir_for_the_build_process"),
        "pypi-token": lambda: simple(pypi_token(f"{r(HEX, 8)}-{r(HEX, 4)}-4{r(HEX, 3)}-a{r(HEX, 3)}-{r(HEX, 12)}",
                                                r(ALNUM, 32).encode(), ('[1,["demo-project"]]',)),
                                     f"pypi-AgEIcHlwaS5vcmc{r(URLSAFE, 10)}"),
        "rubygems-api-key": lambda: simple(f"rubygems_{r(HEX, 48)}", f"rubygems_{r(HEX, 40)}"),
        "dockerhub-pat": lambda: simple(f"dckr_pat_{r(URLSAFE, 27)}", f"dckr_pat_{r(URLSAFE, 10)}"),
        "huggingface-token": lambda: simple(f"hf_{r(string.ascii_letters, 34)}", "hf_hub_download_for_the_model_weights_now"),
        "openai-api-key": lambda: simple(f"sk-proj-{r(URLSAFE, 40)}T3BlbkFJ{r(URLSAFE, 40)}", f"sk-proj-{r(URLSAFE, 80)}"),
        "anthropic-api-key": lambda: simple(f"sk-ant-api03-{r(URLSAFE, 93)}", f"sk-ant-api03-{r(URLSAFE, 20)}"),
        "twilio-api-key": lambda: (lambda k: (f"twilio:\n  api_key: {k}\n", k, f"api_key: {k}\n"))(f"SK{r(HEX, 32)}"),
        "twilio-auth-token": lambda: simple(r(HEX, 32), r(HEX, 31), "TWILIO_AUTH_TOKEN={}\n"),
        "sendgrid-api-key": lambda: simple(f"SG.{r(URLSAFE, 22)}.{r(URLSAFE, 43)}", "msg.send_email_now()"),
        "mailchimp-api-key": lambda: simple(f"{r(HEX, 32)}-us{RNG.randint(1, 20)}", f"{r(HEX, 31)}-us1",
                                            "mailchimp_key: {}\n"),
        "mailgun-api-key": lambda: simple(f"key-{r(HEX, 32)}", "key-value-store-for-the-cache-of-it"),
        "shopify-token": lambda: simple(f"shpat_{r(HEX, 32)}", f"shpat_{r(HEX, 16)}"),
        "digitalocean-token": lambda: simple(f"dop_v1_{r(HEX, 64)}", f"dop_v1_{r(HEX, 60)}"),
        "databricks-token": lambda: simple(f"dapi{r(HEX, 32)}", f"dapi{r(HEX, 20)}"),
        "square-token": lambda: simple(f"sq0atp-{r(URLSAFE, 22)}", f"sq0atp-{r(URLSAFE, 10)}"),
        "newrelic-user-key": lambda: simple(f"NRAK-{r(string.ascii_uppercase + string.digits, 27)}", "NRAK-SHORT"),
        "postman-api-key": lambda: simple(f"PMAK-{r(HEX, 24)}-{r(HEX, 34)}", f"PMAK-{r(HEX, 24)}-{r(HEX, 10)}"),
        "linear-api-key": lambda: simple(f"lin_api_{r(ALNUM, 40)}", f"lin_api_{r(ALNUM, 20)}"),
        "grafana-token": lambda: simple(f"glsa_{r(ALNUM, 32)}_{r(HEX, 8)}", f"glsa_{r(ALNUM, 32)}_{r(HEX, 4)}"),
        "vault-token": lambda: simple(f"hvs.{r(URLSAFE, 95)}", f"hvs.{r(URLSAFE, 20)}"),
        "terraform-cloud-token": lambda: simple(f"{r(ALNUM, 14)}.atlasv1.{r(URLSAFE, 67)}", f"{r(ALNUM, 14)}.atlasv1.{r(ALNUM, 10)}"),
        "doppler-token": lambda: simple(f"dp.pt.{r(ALNUM, 43)}", f"dp.pt.{r(ALNUM, 20)}"),
        "sentry-token": lambda: simple(f"sntryu_{r(HEX, 64)}", f"sntryu_{r(HEX, 20)}"),
        "alibaba-access-key-id": lambda: simple(f"LTAI{r(ALNUM, 20)}", "LTAIshort"),
        "atlassian-api-token": lambda: simple(f"ATATT3{r(URLSAFE, 186)}", f"ATATT3{r(URLSAFE, 30)}"),
        "telegram-bot-token": lambda: (lambda s: (f"bot {RNG.randint(10**8, 10**9)}:{s}\n", s,
                                                  f"bot 12:{s}\n"))(f"AA{r(URLSAFE, 33)}"),
        "discord-webhook": lambda: simple(f"https://discord.com/api/webhooks/{r(string.digits, 18)}/{r(URLSAFE, 68)}",
                                          "https://discord.com/api/webhooks/123/abc"),
        "heroku-api-key": lambda: (lambda u: (f"HEROKU_API_KEY={u}\n", u, f"HEROKU_APP_ID={u}\n"))(
            f"{r(HEX, 8)}-{r(HEX, 4)}-{r(HEX, 4)}-{r(HEX, 4)}-{r(HEX, 12)}"),
        "private-key": lambda: (lambda k: (k, k.split("-----")[2], "-----BEGIN PUBLIC KEY-----\nMIIB...\n-----END PUBLIC KEY-----\n"))(
            pem()),
        "jwt": lambda: (lambda t: (f"Authorization_token_in_config {t}\n", t,
                                   f"eyJ{r(URLSAFE, 20)}.eyJ{r(URLSAFE, 20)}.{r(URLSAFE, 20)}\n"))(
            f"{b64url({'alg': 'HS256', 'typ': 'JWT'})}.{b64url({'sub': '1', 'iat': 1700000000})}.{r(URLSAFE, 43)}"),
        "basic-auth-url": lambda: (lambda p: (f"DATABASE=postgres://app:{p}@db.internal:5432/app\n", p,
                                              "DATABASE=postgres://app:${DB_PASSWORD}@db.internal:5432/app\n"))(r(ALNUM, 16)),
        "authorization-header": lambda: (lambda t: (f'curl -H "Authorization: Bearer {t}" https://api.internal/v1\n', t,
                                                    'curl -H "Authorization: Bearer $TOKEN" https://api.internal/v1\n'))(
            r(ALNUM, 40)),
        "chpasswd": lambda: (lambda p: (f'echo "root:{p}" | chpasswd\n', p, 'echo "root:$ROOT_PASSWORD" | chpasswd\n'))(
            r(ALNUM, 12)),
    }


CASES = _cases()
RULESET = load_ruleset()
SCANNER = Scanner(RULESET)


def test_every_rule_has_a_case_and_there_are_at_least_30_providers():
    ids = {rule.id for rule in RULESET.rules}
    assert ids == set(CASES), f"missing cases: {sorted(ids - set(CASES))}; stale: {sorted(set(CASES) - ids)}"
    assert len(ids) >= 30
    for rule in RULESET.rules:
        assert rule.id and rule.title and rule.severity and rule.keywords


def test_no_builtin_regex_starts_with_a_lookbehind():
    # a leading lookbehind disables the regex engine's literal-prefix search (tens of times slower)
    for rule in RULESET.rules:
        assert not rule.regex.pattern.startswith((b"(?<", b"\\b")), rule.id


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_true_positive(rule_id: str):
    text, secret, _ = CASES[rule_id]()
    hits = [h for h in SCANNER.scan(text.encode(), FILE_CONFIG) if h.rule_id == rule_id]
    assert [h.secret for h in hits] == [secret], (rule_id, text)
    assert hits[0].severity == RULESET.get(rule_id).severity


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_near_miss(rule_id: str):
    _, _, near = CASES[rule_id]()
    assert not [h for h in SCANNER.scan(near.encode(), FILE_CONFIG) if h.rule_id == rule_id], (rule_id, near)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_keywords_gate_the_rule(rule_id: str):
    # every true positive contains one of its rule's keywords (else the pre-filter would hide it)
    text, _, _ = CASES[rule_id]()
    assert any(kw in text.lower().encode() for kw in RULESET.get(rule_id).keywords)


def test_accelerated_and_plain_keyword_index_agree():
    kws = [b"ghp_", b"pass", b"key", b"://", b"private key", b"eyj"]
    text = b"the password for the private key is at https://x ... eyj ghp_ key"
    plain = KeywordIndex(kws, use_accelerator=False)
    assert not plain.accelerated
    fast = KeywordIndex(kws, use_accelerator=True)
    for buf in (text, b"", b"nothing here", text * 100):
        assert fast.present(buf.lower()) == plain.present(buf.lower())
    # overlapping keywords are all reported (aws_secret inside aws_secret_access_key)
    both = KeywordIndex([b"aws_secret", b"secret_access_key", b"secret"], use_accelerator=True)
    assert both.present(b"aws_secret_access_key") == {0, 1, 2}


def test_scanner_without_accelerator_finds_the_same(monkeypatch):
    monkeypatch.setattr(textscan, "_ac", None)
    plain = Scanner(RULESET)
    assert not plain.index.accelerated
    for rule_id, make in CASES.items():
        text, secret, _ = make()
        assert secret in [h.secret for h in plain.scan(text.encode(), FILE_CONFIG) if h.rule_id == rule_id]


# --- validators and severities ------------------------------------------------------------


def test_encrypted_pem_is_medium_and_openssh_cipher_decoded():
    enc = pem("ENCRYPTED PRIVATE KEY")
    hits = SCANNER.scan(enc.encode(), FILE_CONFIG)
    assert [(h.rule_id, h.severity) for h in hits] == [("private-key", "medium")]
    legacy = pem("RSA PRIVATE KEY", pre="Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n")
    assert [h.severity for h in SCANNER.scan(legacy.encode(), FILE_CONFIG)] == ["medium"]
    assert [h.severity for h in SCANNER.scan(openssh_key("aes256-ctr").encode(), FILE_CONFIG)] == ["medium"]
    assert [h.severity for h in SCANNER.scan(openssh_key("none").encode(), FILE_CONFIG)] == ["critical"]


def test_elided_pem_in_docs_is_not_a_key():
    doc = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...\n...\n-----END RSA PRIVATE KEY-----\n"
    assert SCANNER.scan(doc.encode(), FILE_CONFIG) == []


def test_library_paths_downgrade_fixture_prone_rules_only():
    key = pem().encode()
    assert [h.severity for h in SCANNER.scan(key, FILE_CONFIG, library=True)] == ["low"]
    tok = f"token = {github_token('ghp_', r(ALNUM, 30))}".encode()
    assert [h.severity for h in SCANNER.scan(tok, FILE_CONFIG, library=True)] == ["critical"]


def test_unsigned_jwt_is_low():
    t = f"{b64url({'alg': 'none'})}.{b64url({'sub': 'x'})}."
    hits = [h for h in SCANNER.scan(f"t={t} ".encode(), NO_NAMES) if h.rule_id == "jwt"]
    assert [h.severity for h in hits] == ["low"]


@pytest.mark.parametrize("url", [
    "https://user:password@host.internal/x",  # placeholder password
    "https://user:pass@example.com/x",  # documentation host
    "https://user:%s@host/x",  # format string
    "https://{user}:{password}@host/x",
    "https://token:x-oauth-basic@github.com/x",  # the token is the user part (other rule)
])
def test_basic_auth_placeholders_dropped(url: str):
    assert not [h for h in SCANNER.scan(url.encode(), FILE_CONFIG) if h.rule_id == "basic-auth-url"]


def test_overlapping_hits_keep_the_specific_rule():
    tok = github_token("ghp_", r(ALNUM, 30))
    hits = SCANNER.scan(f"GITHUB_TOKEN={tok}\n".encode(), FILE_CONFIG)
    assert [(h.rule_id, h.secret) for h in hits] == [("github-pat", tok)]


# --- name rules -----------------------------------------------------------------------------


@pytest.mark.parametrize("text,secret", [
    ("DB_PASSWORD=hunter2\n", "hunter2"),
    ("export API_KEY='q8Zt3LmN0pR5sV7w'\n", "q8Zt3LmN0pR5sV7w"),
    ('{"clientSecret": "k3Jd93kd0Qm1Lz"}', "k3Jd93kd0Qm1Lz"),
    ("db.password = s3cr3tV4lue\n", "s3cr3tV4lue"),
    ("<password>Tr0ub4dor&3</password>\n", "Tr0ub4dor&3"),
    ("  secret_key_base: 6f1d9c0b8e7a\n", "6f1d9c0b8e7a"),
    ("NPM_AUTH=dXNlcjpwYXNzd29yZA==\n", "dXNlcjpwYXNzd29yZA=="),
])
def test_name_rule_true_positives(text: str, secret: str):
    hits = SCANNER.scan(text.encode(), FILE_CONFIG)
    assert [(h.rule_id, h.secret) for h in hits] == [("secret-assignment", secret)]


@pytest.mark.parametrize("text", [
    "GPG_KEY=FB5DB77FD5C118B80511ADA8A6310ACC4672475C\n",
    "PASSENGER_VERSION=6.0.1\n",
    "PYTHON_SHA256=3b1c3b4f1b0b8f0d8d3f0f6a3f2b1c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b\n",
    "TOKEN_URL=https://example.com/token\n",
    "apt-get install -y libsecret-1-0=0.20.5-3 gnome-keyring=42.1\n",
    "DB_PASSWORD=changeme\n",
    "DB_PASSWORD=${DB_PASSWORD}\n",
    "DB_PASSWORD=$(cat /run/secrets/db)\n",
    "MYSQL_PASSWORD_FILE=/run/secrets/mysql\n",
    "PASSWORD=\n",
    "password: <your password here>\n",
    "MAX_TOKENS=4096\n",
    "AWS_ACCESS_KEY_ID=\n",
    "PWD=/home/app\n",
    "AUTH_TYPE=oauth2\n",
    "password = os.environ['DB_PASSWORD']\n",
    "if password == 'hunter2':\n",
    "Password-Type: Primary\n",  # pam-configs: '-' separates words like '_' (*_TYPE)
    "passwd:         files systemd\n",  # nsswitch.conf: a database name, not an assignment
    "user_password=abc$USER_SUFFIX\n",  # interpolation inside the value
    'print "# pass: \\$\\@";\n',
])
def test_name_rule_near_misses(text: str):
    assert [h for h in SCANNER.scan(text.encode(), FILE_CONFIG) if h.rule_id == "secret-assignment"] == []


def test_code_files_need_quoted_generated_literals():
    assert SCANNER.scan(b"password = get_password()\n", textscan.FILE_CODE) == []
    hits = SCANNER.scan(b'password = "Zx9!kLm2pQ7r"\n', textscan.FILE_CODE)
    assert [(h.secret, h.severity) for h in hits] == [("Zx9!kLm2pQ7r", "high")]
    # human-chosen words in code are examples and test data, not reported
    for text in (b'password = "hunter2"\n', b"my $out = $as->{pass} ? \"PASS\" : \"FAIL\";\n",
                 b"'CPAN::HTTP::Credentials'=> 'cpan',\n", b"$pass = '-anonymous@'\n",
                 b"'disabled-password' => sub { $ask_passwd = 0 },\n"):
        assert SCANNER.scan(text, textscan.FILE_CODE) == [], text


def test_lowercase_words_are_weak_not_generated():
    from bilge.secrets.names import is_strong

    assert not is_strong("elevated-privileges") and not is_strong("correct-horse-battery")
    assert is_strong("Zx9!kLm2pQ7r") and is_strong("a8Fk2kdL0qPz93mXnB7c")
    assert [h.severity for h in SCANNER.scan(b"api_token: elevated-privileges\n", FILE_CONFIG)] == ["medium"]


def test_shell_flags_and_user_colon_pass_in_shell():
    hits = SCANNER.scan(b"mysql --password s3cRet9x -h db && curl -u user:pass1 x", SHELL)
    assert [h.secret for h in hits] == ["s3cRet9x"]


# --- configuration --------------------------------------------------------------------------


def test_config_adds_overrides_disables_and_changes_severity(tmp_path):
    cfg = {
        "rule": [
            {"id": "acme-token", "title": "ACME internal token", "severity": "high", "keywords": ["acme_"],
             "regex": "(?P<secret>acme_[0-9a-f]{32})"},
            {"id": "jwt", "severity": "high"},  # override one field of a built-in rule
        ],
        "disable": ["mailgun-api-key"],
        "severity": {"stripe-test-key": "info"},
    }
    rs = load_ruleset(cfg)
    assert rs.get("acme-token").severity == "high"
    assert rs.get("jwt").severity == "high" and rs.get("jwt").regex.pattern == RULESET.get("jwt").regex.pattern
    assert rs.get("mailgun-api-key") is None
    assert rs.get("stripe-test-key").severity == "info"
    tok = f"acme_{r(HEX, 32)}"
    assert [h.secret for h in Scanner(rs).scan(f"x {tok}".encode(), NO_NAMES)] == [tok]


def test_user_rules_file_replaces_builtin_format_rules(tmp_path):
    path = tmp_path / "my-rules.toml"
    path.write_text('[[rule]]\nid = "only"\ntitle = "Only"\nseverity = "low"\nkeywords = ["zz_"]\nregex = "zz_[0-9]{8}"\n')
    rs = load_ruleset({"rules_file": "my-rules.toml"}, tmp_path)
    assert [x.id for x in rs.rules] == ["only"]
    assert rs.names.enabled  # name rules kept


@pytest.mark.parametrize("cfg,msg", [
    ({"rule": [{"id": "x", "title": "t", "severity": "urgent", "keywords": ["a"], "regex": "a"}]}, "unknown severity"),
    ({"rule": [{"id": "x", "title": "t", "severity": "high", "keywords": ["a"], "regex": "("}]}, "invalid regex"),
    ({"rule": [{"id": "x", "title": "t", "severity": "high", "regex": "a"}]}, "missing required field 'keywords'"),
    ({"rule": [{"id": "x", "title": "t", "severity": "high", "keywords": [], "regex": "a"}]}, "non-empty"),
    ({"disable": ["no-such-rule"]}, "no rule with id"),
    ({"severity": {"jwt": "urgent"}}, "unknown severity"),
    ({"bogus": 1}, "unknown key"),
    ({"rules_file": "nope.toml"}, "rules file not found"),
])
def test_bad_config_is_one_clear_error(cfg, msg):
    with pytest.raises(BilgeError, match=msg):
        load_ruleset(cfg)


def test_disable_name_rule_and_file_rule():
    rs = load_ruleset({"disable": ["secret-assignment", "netrc"]})
    assert not rs.names.enabled and "netrc" in rs.disabled
    assert Scanner(rs).scan(b"DB_PASSWORD=hunter2\n", FILE_CONFIG) == []


def test_rules_file_is_package_data():
    # bilge/data/** is in [tool.setuptools.package-data]: a wheel ships it
    import tomllib
    from importlib import resources
    from pathlib import Path

    assert resources.files("bilge").joinpath("data", "secrets", "rules.toml").is_file()
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["bilge"]
        import fnmatch

        assert any(fnmatch.fnmatch("data/secrets/rules.toml", p) for p in patterns)


def test_name_rules_extend_from_config():
    rs = load_ruleset({"names": {"extra_words": ["pin"], "extra_exclude_names": ["*_PUBLIC_TOKEN"],
                                 "extra_placeholders": ["notasecret"]}})
    sc = Scanner(rs)
    assert [h.secret for h in sc.scan(b"CARD_PIN=839201x\n", FILE_CONFIG)] == ["839201x"]
    assert sc.scan(b"MAPBOX_PUBLIC_TOKEN=Zk2m9QpL0xV7nB4cQ\n", FILE_CONFIG) == []
    assert sc.scan(b"DB_PASSWORD=notasecret\n", FILE_CONFIG) == []
    # the built-in lists are kept
    assert [h.secret for h in sc.scan(b"DB_PASSWORD=hunter2\n", FILE_CONFIG)] == ["hunter2"]
