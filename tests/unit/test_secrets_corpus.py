"""Precision (issue 12): true and false examples per rule, in images built in code.

The false examples are the lines real Debian packages ship (quoted from the files named in each
case: bundler's ``bundle-config.1.ronn``, Rails' ``config/database.yml`` template, PostgreSQL's
``postgresql.conf``, OpenSSL's ``openssl.cnf``); the true ones are planted secrets of the real
formats. Every false example must stay below the default threshold (high), with its reason.
"""

from __future__ import annotations

import random
import string
import zlib

import pytest

from bilge.secrets import at_or_above, scan_source
from bilge.secrets.mask import redact
from bilge.secrets.precision import base62, github_checksum_ok, github_token, placeholder_reason
from bilge.secrets.rules import load_ruleset
from bilge.secrets.textscan import FILE_CONFIG, SHELL, Scanner
from bilge.source import open_image
from bilge.testing import docker_archive

RNG = random.Random(1212)
ALNUM = string.ascii_letters + string.digits


def rnd(n: int, alphabet: str = ALNUM) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def scan_files(tmp_path, files: dict[str, bytes]):
    path = tmp_path / "img.tar"
    docker_archive(path, [[("file", p, body) for p, body in files.items()]])
    with open_image(str(path)) as src:
        findings, _ = scan_source(src)
    return findings


# ---------------------------------------------------------------------------------------------
# GitHub's checksum


def test_checksum_is_crc32_in_base62_of_the_random_part():
    body = rnd(30)
    token = github_token("ghp_", body)
    # independent of base62(): decode the six digits back to the CRC32
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    value = 0
    for ch in token[-6:]:
        value = value * 62 + alphabet.index(ch)
    assert value == zlib.crc32(body.encode()) and len(token) == 40
    assert github_checksum_ok(token) is True
    broken = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert github_checksum_ok(broken) is False
    assert github_checksum_ok("ghp_short") is None and base62(0) == "000000"


@pytest.mark.parametrize("prefix,rule", [("ghp_", "github-pat"), ("gho_", "github-oauth-token"),
                                         ("ghs_", "github-app-token"), ("ghu_", "github-app-token")])
def test_token_with_checksum_is_critical_without_it_low(prefix, rule):
    scanner = Scanner(load_ruleset())
    good = github_token(prefix, rnd(30))
    bad = prefix + rnd(36)
    while github_checksum_ok(bad):
        bad = prefix + rnd(36)
    hits = {h.secret: h for h in scanner.scan(f"A={good}\nB={bad}\n".encode(), SHELL)}
    assert hits[good].rule_id == rule and hits[good].severity == "critical"
    assert hits[bad].rule_id == rule and hits[bad].severity == "low" and "checksum" in hits[bad].note


def test_x_oauth_basic_needs_a_github_token_shape():
    scanner = Scanner(load_ruleset())
    classic = rnd(40, "0123456789abcdef")
    for value, severity in ((classic, "critical"), (github_token("ghp_", rnd(30)), "critical"),
                            ("abcd0123generatedtoken", "low")):
        hits = [h for h in scanner.scan(f'BUNDLE_GITHUB__COM="{value}:x-oauth-basic"\n'.encode(), FILE_CONFIG)
                if h.rule_id in ("github-oauth-basic", "github-pat")]  # a ghp_ one is reported as github-pat
        assert [(h.secret, h.severity) for h in hits] == [(value, severity)]


# ---------------------------------------------------------------------------------------------
# Real false alarms from Debian packages, and true positives next to them

RONN = (b"where you can use personal OAuth tokens:\n\n"
        b"    export BUNDLE_GITHUB__COM=abcd0123generatedtoken:x-oauth-basic\n\n"
        b"Note that any configured credentials will be redacted by informative commands\n")
DATABASE_YML = (b"# variable when you boot the app. For example:\n#\n"
                b'#   DATABASE_URL="postgres://myuser:mypass@localhost/somedatabase"\n#\n'
                b"production:\n  <<: *default\n  database: app_production\n")
POSTGRESQL_CONF = (b"#authentication_timeout = 1min\t\t# 1s-600s\n"
                   b"#password_encryption = scram-sha-256\t# scram-sha-256 or md5\n")


def test_debian_documentation_examples_stay_below_high(tmp_path):
    findings = scan_files(tmp_path, {
        "usr/lib/ruby/3.1.0/bundler/man/bundle-config.1.ronn": RONN,
        "usr/share/rubygems-integration/all/gems/bundler-2.3.15/lib/bundler/man/bundle-config.1.ronn": RONN,
        "opt/app/config/database.yml": DATABASE_YML,
        "etc/postgresql/15/main/postgresql.conf": POSTGRESQL_CONF,
    })
    assert at_or_above(findings, "high") == []
    by_rule = {f.rule: f for f in findings}
    ronn = by_rule["github-oauth-basic"]  # the two copies are one finding
    assert ronn.severity == "low" and "not a GitHub token" in ronn.note
    assert len(ronn.also_at) == 1 and ronn.also_at[0].endswith("bundle-config.1.ronn:3")
    url = by_rule["basic-auth-url"]
    assert url.severity == "low" and "on a commented line" in url.note and "'my…'" in url.note
    assert not any(f.location.path.endswith("postgresql.conf") for f in findings)  # a setting, not a secret


def test_true_positives_keep_their_severity_in_the_same_image(tmp_path):
    token = github_token("ghp_", rnd(30))
    master = rnd(32, "0123456789abcdef")
    findings = scan_files(tmp_path, {
        "opt/app/config/master.key": master.encode(),
        "root/.git-credentials": f"https://deploy:{token}@github.com\n".encode(),
        "opt/app/.npmrc": f"//registry.npmjs.org/:_authToken=npm_{rnd(36)}\n".encode(),
        "opt/app/config/database.yml": DATABASE_YML + b'  url: "postgres://app:Zq8vN3kLw2Rt@db.internal/app"\n',
        "usr/share/doc/app/README.md": f"export GITHUB_TOKEN={token}\n".encode(),  # a real token in docs stays
    })
    high = {(f.rule, f.location.path) for f in at_or_above(findings, "high")}
    assert ("rails-master-key", "opt/app/config/master.key") in high
    assert any(p == "root/.git-credentials" for _, p in high)
    assert any(p == "opt/app/.npmrc" for _, p in high)
    assert ("basic-auth-url", "opt/app/config/database.yml") in high
    assert ("github-pat", "usr/share/doc/app/README.md") in high or any(
        token in f.secret for f in at_or_above(findings, "high"))


def test_snakeoil_key_is_medium_with_the_reason(tmp_path):
    b64 = string.ascii_letters + string.digits + "+/"

    def key() -> bytes:
        body = "\n".join(rnd(64, b64) for _ in range(25))
        return f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n".encode()
    findings = scan_files(tmp_path, {"etc/ssl/private/ssl-cert-snakeoil.key": key(), "root/.ssh/id_rsa": key()})
    sev = {f.location.path: f for f in findings}
    assert sev["etc/ssl/private/ssl-cert-snakeoil.key"].severity == "medium"
    assert "snakeoil" in sev["etc/ssl/private/ssl-cert-snakeoil.key"].note
    assert sev["root/.ssh/id_rsa"].severity == "critical"


@pytest.mark.parametrize("value,placeholder", [
    ("mypass", True), ("abcd0123generatedtoken", True), ("<your-token>", True), ("${DB_PASSWORD}", True),
    ("xxxxxxxx", True), ("changeme", True), ("aaaa1111", True), ("Zq8vN3kLw2Rt", False), ("scram-sha-256", False),
])
def test_placeholder_words(value, placeholder):
    assert (placeholder_reason(value) is not None) is placeholder


# ---------------------------------------------------------------------------------------------
# Masking


def test_a_value_is_never_masked_inside_a_longer_word():
    line = "apt-get install -y --no-install-recommends openssl"
    assert redact(line, [("insta", "i…(5 chars)")]) == line
    assert redact("secret = pass:insta # x", [("insta", "i…(5 chars)")]) == "secret = pass:i…(5 chars) # x"
    token = github_token("ghp_", rnd(30))
    assert redact(f"TOKEN={token} && install", [(token, "ghp_ab…(40 chars)")]) == "TOKEN=ghp_ab…(40 chars) && install"


def test_report_masks_short_values_only_where_they_stand(tmp_path):
    """The issue's case: a 5-letter value found in a file garbled `install` in the token's history line."""
    import json

    from bilge.format.secrets import to_json
    from bilge.secrets import build_report
    from bilge.testing import config_for, layer_tar

    token = github_token("ghp_", rnd(30))
    layers = [[("dir", "etc"), ("dir", "etc/ssl"), ("file", "etc/ssl/openssl.cnf", b"secret = pass:insta\n")]]
    history = [f"|1 GITHUB_ACCESS_TOKEN={token} /bin/sh -c apt-get install -y --no-install-recommends ssl"]
    path = tmp_path / "img.tar"
    docker_archive(path, layers, config=config_for([layer_tar(x) for x in layers], history))
    with open_image(str(path)) as src:
        findings, stats = scan_source(src)
        report = build_report(src.image, findings, stats, threshold="low")
    doc = to_json(report)
    text = json.dumps(doc, ensure_ascii=False)
    assert token not in text and "insta" in {f["location"]["path"] and "insta" for f in doc["findings"]}
    hist = next(f for f in doc["findings"] if f["location"]["kind"] == "history")
    assert "apt-get install -y --no-install-recommends" in hist["location"]["instruction"]
    assert "GITHUB_ACCESS_TOKEN=ghp_" in hist["location"]["instruction"] and "(40 chars)" in hist["location"]["instruction"]


def test_history_redaction_masks_where_the_value_stands_and_leaves_words_alone():
    from bilge.redact import redact as redact_line

    token = github_token("ghp_", rnd(30))
    line = f"|1 GITHUB_ACCESS_TOKEN={token} /bin/sh -c apt-get install -y --no-install-recommends x && echo {token}"
    out = redact_line(line)
    assert token not in out and out.count(token[:6] + "…(40 chars)") == 2
    assert "apt-get install -y --no-install-recommends x" in out
