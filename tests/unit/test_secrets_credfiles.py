"""Credential files recognised by path and parsed by content: a true positive and a near miss each."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from bilge.secrets.credfiles import FILE_RULES, GATE_NAMES, GATE_SUFFIXES, parse_credfile, recognise
from bilge.secrets.rules import load_ruleset

RNG = random.Random(99)
NAMES = load_ruleset().names


def r(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


PW = r(14)
TOK = r(40)
HEXKEY = r(32, "0123456789abcdef")
AUTH = base64.b64encode(f"deploy:{PW}".encode()).decode()

# rule id -> (path, content with the secret, the secret, near-miss content)
CASES: dict[str, tuple[str, str, str, str]] = {
    "netrc": ("root/.netrc", f"machine files.acme.internal\n  login deploy\n  password {PW}\n", PW,
              "machine files.acme.internal login deploy password ${NETRC_PASSWORD}\n"),
    "git-credentials": ("home/app/.git-credentials", f"https://deploy:{TOK}@github.com\n", TOK,
                        "https://github.com\n"),
    "git-config-credential": ("app/.git/config",
                              f'[remote "origin"]\n\turl = https://deploy:{TOK}@git.acme.internal/app.git\n', TOK,
                              '[remote "origin"]\n\turl = https://git.acme.internal/app.git\n'),
    "npmrc-auth": ("usr/src/app/.npmrc", f"@acme:registry=https://npm.pkg.github.com\n//npm.pkg.github.com/:_authToken={TOK}\n",
                   TOK, "//npm.pkg.github.com/:_authToken=${NPM_TOKEN}\n"),
    "pypirc-password": ("root/.pypirc", f"[pypi]\nusername = deploy\npassword = {PW}\n", PW,
                        "[pypi]\nusername = __token__\n"),
    "gem-credentials": ("root/.gem/credentials", f"---\n:rubygems_api_key: {TOK}\n", TOK, "---\n:rubygems_api_key:\n"),
    "bundler-credentials": ("usr/local/bundle/config", f'---\nBUNDLE_GEMS__ACME__COM: "deploy:{PW}"\nBUNDLE_WITHOUT: "test"\n',
                            f"deploy:{PW}", '---\nBUNDLE_BUILD__NOKOGIRI: "--use-system-libraries"\nBUNDLE_WITHOUT: "development:test"\n'),
    "docker-config-auth": ("root/.docker/config.json", json.dumps({"auths": {"registry.acme.internal": {"auth": AUTH}}}),
                           AUTH, json.dumps({"auths": {"registry.acme.internal": {}}, "credsStore": "pass"})),
    "aws-credentials-file": ("root/.aws/credentials",
                             f"[default]\naws_access_key_id = AKIA{r(16, string.ascii_uppercase)}\naws_secret_access_key = {r(40)}\n",
                             "", "[default]\nregion = eu-west-1\n"),
    "kubeconfig-credential": ("root/.kube/config", f"users:\n- name: ci\n  user:\n    token: {TOK}\n", TOK,
                              "users:\n- name: ci\n  user:\n    exec:\n      command: aws\n"),
    "database-yml-password": ("app/config/database.yml", f"production:\n  adapter: postgresql\n  password: {PW}\n", PW,
                              "production:\n  password: <%= ENV['DB_PASSWORD'] %>\n"),
    "rails-secrets-yml": ("app/config/secrets.yml", f"production:\n  secret_key_base: {TOK}\n", TOK,
                          "production:\n  secret_key_base: <%= ENV[\"SECRET_KEY_BASE\"] %>\n"),
    "rails-master-key": ("app/config/master.key", f"{HEXKEY}\n", HEXKEY, "not a key\n"),
    "pgpass": ("root/.pgpass", f"db.internal:5432:app:app:{PW}\n", PW, "# host:port:db:user:password\n"),
    "mysql-client-password": ("root/.my.cnf", f"[client]\nuser=app\npassword={PW}\n", PW, "[client]\nuser=app\n"),
    "vault-token-file": ("root/.vault-token", f"hvs.{r(90)}\n", "", "\n"),
    "shadow-password-hash": ("etc/shadow", f"root:$6$salt${r(86)}:19000:0:99999:7:::\n", "",
                             "root:*:19000:0:99999:7:::\nnobody:!:19000::::::\n"),
    "htpasswd": ("etc/nginx/.htpasswd", f"admin:$apr1$abc${r(22)}\n", "", "# no users\n"),
    "pkcs12-keystore": ("app/certs/client.p12", "0" + r(100), "", "x"),
}


def test_every_file_rule_has_a_case():
    assert {fr.id for fr in FILE_RULES} == set(CASES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_credential_file_true_positive(rule_id: str):
    path, content, secret, _ = CASES[rule_id]
    rules = recognise(path)
    assert rule_id in [fr.id for fr in rules], path
    fr = next(x for x in rules if x.id == rule_id)
    data = content.encode() if rule_id != "pkcs12-keystore" else b"\x30" + content.encode()
    hits = parse_credfile(fr, data, NAMES)
    assert hits, (rule_id, content)
    if secret:
        assert secret in [h.secret for h in hits]


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_credential_file_near_miss(rule_id: str):
    path, _, _, near = CASES[rule_id]
    fr = next(x for x in recognise(path) if x.id == rule_id)
    assert parse_credfile(fr, near.encode(), NAMES) == []


@pytest.mark.parametrize("path", ["usr/share/doc/netrc/README", "app/netrc.md", "etc/shadow.bak", "app/config.yml",
                                  "app/database.yml.example", "etc/gshadow", "root/.ssh/known_hosts"])
def test_paths_not_recognised(path: str):
    assert recognise(path) == []


def test_gate_covers_every_recogniser_path():
    # every path each rule recognises must pass the cheap basename gate
    for _, (path, *_rest) in CASES.items():
        base = path.rpartition("/")[2]
        assert base in GATE_NAMES or base.endswith(GATE_SUFFIXES), path


def test_docker_config_empty_auth_is_not_a_credential():
    empty = base64.b64encode(b":").decode()
    fr = next(x for x in recognise("root/.docker/config.json"))
    assert parse_credfile(fr, json.dumps({"auths": {"r": {"auth": empty}}}).encode(), NAMES) == []


def test_disabled_file_rules_are_not_recognised():
    assert recognise("root/.netrc", frozenset({"netrc"})) == []
