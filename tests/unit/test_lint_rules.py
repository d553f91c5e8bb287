"""Each rule on small Dockerfiles written here: what fires, where, at which severity, and what must not fire."""

from __future__ import annotations

import pytest

from bilge.dockerfile.parse import parse_text
from bilge.dockerfile.rules import RULES, LintOptions, apply_config, lint
from bilge.dockerfile.secretnames import (
    credential_file,
    harmless_value,
    literal_credentials,
    secret_name,
    secret_value,
)


def run(text: str, **opts) -> list[tuple[int, str, str]]:
    return [(f.line, f.rule, f.severity) for f in lint(parse_text(text), LintOptions(**opts))]


def rules_at(text: str, **opts) -> set[tuple[int, str]]:
    return {(line, rule) for line, rule, _ in run(text, **opts)}


# --- secret-arg ---------------------------------------------------------------------------------------------

def test_secret_arg_in_final_stage_is_high():
    assert run("FROM a\nARG NPM_TOKEN\nRUN npm ci\n") == [(2, "secret-arg", "high"), (3, "cache-not-cleaned", "low")]


def test_secret_arg_in_builder_stage_is_medium_and_not_reported_for_the_final_stage():
    text = ("FROM a AS build\nARG GITHUB_TOKEN\nRUN echo $GITHUB_TOKEN >/dev/null\n"
            "FROM b\nCOPY --from=build /out /out\nRUN true\n")
    assert run(text) == [(2, "secret-arg", "medium")]
    f = lint(parse_text(text))[0]
    assert "not shipped" in f.message and "--target" in f.message


def test_secret_arg_with_target_is_high():
    text = "FROM a AS build\nARG GITHUB_TOKEN\nRUN make\nFROM b\nCOPY --from=build /out /out\n"
    assert run(text, target="build") == [(2, "secret-arg", "high")]


def test_secret_arg_inherited_by_a_stage_built_from_it_is_shipped():
    text = "FROM a AS base\nARG DB_PASSWORD\nRUN migrate\nFROM base\nCMD x\n"
    assert run(text) == [(2, "secret-arg", "high")]


def test_secret_arg_without_a_run_in_scope_is_not_reported():
    assert run("FROM a\nRUN true\nARG NPM_TOKEN\nCMD x\n") == []


def test_secret_arg_with_a_literal_default_is_reported_without_run():
    out = lint(parse_text("FROM a\nARG GITHUB_TOKEN=ghp_" + "a1B2" * 9 + "\nCMD x\n"))
    assert [(f.line, f.rule) for f in out] == [(2, "secret-arg")]
    assert "ghp_" + "a1B2" * 9 not in out[0].message and "(40 chars)" in out[0].message


@pytest.mark.parametrize("decl", [
    "ARG RUBY_VERSION=3.3.4", "ARG NODE_ENV=production", "ENV GPG_KEY 7169605F62C751356D054A26A821E680E5FA6305",
    "ENV GPG_KEY=FB5DB77FD5C118B80511ADA8A6310ACC4672475C", "ARG TOKEN_URL=https://example.com/token",
    "ENV SECRET_KEY_BASE_DUMMY=1", "ENV GOOGLE_APPLICATION_CREDENTIALS=/etc/app/credentials.json",
    "ARG TARGETARCH", "ENV TOKENIZERS_PARALLELISM=false", "ARG PASSWORD_MIN_LENGTH=12", "ENV BUNDLE_PATH=/usr/local/bundle",
])
def test_no_false_positive_on_harmless_names(decl):
    assert [r for r in run(f"FROM a\n{decl}\nRUN make\n") if r[1].startswith("secret")] == []


def test_env_copying_a_build_arg_into_the_config():
    text = "FROM a\nARG GITHUB_TOKEN\nENV BUNDLE_GITHUB__COM ${GITHUB_TOKEN}:x-oauth-basic\nRUN bundle install\n"
    found = lint(parse_text(text))
    env = [f for f in found if f.line == 3]
    assert [(f.rule, f.severity) for f in env] == [("secret-arg", "high")]
    assert "image config" in env[0].message and "GITHUB_TOKEN at line 2" in env[0].message


def test_env_with_a_literal_password_and_a_url_password():
    assert (3, "secret-arg") in rules_at("FROM a\nRUN true\nENV DB_PASSWORD=shop\n")
    assert (2, "secret-arg") in rules_at("FROM a\nENV DATABASE_URL=postgres://app:s3cretpw@db/app\n")
    assert rules_at("FROM a\nENV DATABASE_URL=postgres://db:5432/app\n") == set()


def test_onbuild_secret_is_high():
    text = "FROM a\nONBUILD ARG GITHUB_TOKEN\nONBUILD RUN bundle config set --local github.com \"x:$GITHUB_TOKEN\"\n"
    out = run(text)
    assert (2, "secret-arg", "high") in out
    assert (3, "secret-in-layer", "high") in out


# --- secret-copy / secret-in-layer / secret-literal ----------------------------------------------------------

def test_secret_copy_by_name_and_destination():
    text = ("FROM a\nCOPY .npmrc package.json ./\nCOPY deploy/id_rsa /root/.ssh/id_rsa\n"
            "COPY settings.xml /root/.m2/settings.xml\nCOPY .env.example .env.example\nCOPY id_rsa.pub /k\n")
    assert rules_at(text) == {(2, "secret-copy"), (3, "secret-copy"), (4, "secret-copy")}


def test_secret_copy_deleted_later_still_reported_with_note():
    f = [x for x in lint(parse_text("FROM a\nCOPY .netrc /root/.netrc\nRUN curl --netrc x && rm /root/.netrc\n"))
         if x.rule == "secret-copy"][0]
    assert "line 3 deletes it" in f.message and f.severity == "high"


def test_secret_copy_through_the_whole_context(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "master.key").write_text("0123456789abcdef")
    (tmp_path / ".env").write_text("A=1")
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n")
    (tmp_path / "key.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n")
    text = "FROM a\nWORKDIR /app\nCOPY . .\n"
    f = [x for x in lint(parse_text(text), LintOptions(context=str(tmp_path))) if x.rule == "secret-copy"][0]
    assert set(f.details["files"]) == {"config/master.key", ".env", "key.pem"}  # cert.pem is a certificate
    from bilge.dockerfile.dockerignore import parse as parse_ignore

    ign = parse_ignore(".env\n*.pem\nconfig/*.key\n")
    assert [x for x in lint(parse_text(text), LintOptions(context=str(tmp_path), dockerignore=ign))
            if x.rule == "secret-copy"] == []


def test_secret_mount_used_correctly_is_not_a_finding():
    text = ("FROM a\nRUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci && npm cache clean --force\n"
            "RUN --mount=type=secret,id=gh BUNDLE_GITHUB__COM=\"x-access-token:$(cat /run/secrets/gh)\" bundle install"
            " && rm -rf /usr/local/bundle/cache\n")
    assert run(text) == []


def test_secret_mount_copied_into_the_layer_is_a_finding():
    text = "FROM a\nRUN --mount=type=secret,id=npmrc cp /run/secrets/npmrc /root/.npmrc && npm ci && npm cache clean --force\n"
    assert rules_at(text) == {(2, "secret-in-layer")}


def test_secret_written_and_deleted_in_the_same_run_is_fine():
    text = ('FROM a\nARG NPM_TOKEN\nRUN echo "//r/:_authToken=${NPM_TOKEN}" > .npmrc && npm ci '
            "&& npm cache clean --force && rm -f .npmrc\n")
    assert rules_at(text) == {(2, "secret-arg")}
    text2 = 'FROM a\nARG NPM_TOKEN\nRUN echo "//r/:_authToken=${NPM_TOKEN}" > ~/.npmrc\n'
    assert rules_at(text2) == {(2, "secret-arg"), (3, "secret-in-layer")}


def test_secret_literal_in_run_and_label():
    token = "ghp_" + "Zx9" * 12
    out = lint(parse_text(f"FROM a\nRUN git clone https://x:{token}@github.com/o/r\nLABEL k=v\n"))
    assert [(f.line, f.rule) for f in out] == [(2, "secret-literal")]
    assert token not in out[0].message
    assert rules_at("FROM a\nRUN curl https://user:${PASS}@host/x -o /dev/null\n") == set()


# --- size rules ----------------------------------------------------------------------------------------------

def test_cleanup_later_layer_paths_packages_and_cache_commands():
    text = ("FROM a\nRUN apk update\nRUN apk add gcc git\nRUN yarn install\nRUN echo ok\n"
            "RUN apk del gcc git\nRUN rm -rf /var/cache/apk/* node_modules\nRUN yarn cache clean\n")
    got = rules_at(text)
    assert {(6, "cleanup-later-layer"), (7, "cleanup-later-layer"), (8, "cleanup-later-layer")} <= got
    # a cache removed by a later RUN gets both findings: where it is left (the fix goes there) and where
    # it is removed (issue 12)
    assert {(2, "cache-not-cleaned"), (4, "cache-not-cleaned")} <= got
    msgs = {f.line: f.message for f in lint(parse_text(text)) if f.rule == "cache-not-cleaned"}
    assert "the RUN at line 7 removes it, which frees nothing" in msgs[2]
    assert "line 8" in msgs[4]


def test_cleanup_in_the_same_run_is_fine():
    text = ("FROM debian\nRUN apt-get update && apt-get install -y --no-install-recommends gcc "
            "&& make && apt-get purge -y --auto-remove gcc && rm -rf /var/lib/apt/lists/*\n")
    assert run(text) == []


def test_shell_variables_expand_package_lists():
    text = ('FROM debian\nRUN BUILD="gcc libssl-dev" && apt-get update && apt-get install -y $BUILD '
            '&& make && apt-get purge -y $BUILD && rm -rf /var/lib/apt/lists/*\n')
    assert run(text) == []


def test_cleanup_in_a_builder_stage_costs_nothing_shipped():
    text = "FROM a AS b\nRUN apt-get update\nRUN rm -rf /var/lib/apt/lists/*\nFROM c\nCOPY --from=b /x /x\n"
    assert run(text) == []


def test_copied_then_deleted():
    text = "FROM a\nWORKDIR /app\nCOPY . .\nRUN rm -rf tmp/cache spec\n"
    f = [x for x in lint(parse_text(text)) if x.rule == "cleanup-later-layer"][0]
    assert f.line == 4 and f.related == (3,)


def test_specific_copies_do_not_claim_unrelated_paths():
    text = "FROM a\nWORKDIR /app\nCOPY Gemfile Gemfile.lock ./\nRUN rm -rf tmp/cache\n"
    assert run(text) == []


@pytest.mark.parametrize("run_line,kind", [
    ("apt-get update && apt-get install -y curl", "apt-lists"),
    ("apk add curl", "apk-cache"),
    ("pip install flask", "pip-cache"),
    ("npm ci", "npm-cache"),
    ("yarn install", "yarn-cache"),
    ("gem install rails", "gem-cache"),
    ("bundle install", "gem-cache"),
    ("go build ./...", "go-cache"),
    ("mvn package", "maven-repo"),
    ("dnf install -y gcc-c++ && make", "dnf-cache"),
    ("conda install -y numpy", "conda-pkgs"),
])
def test_cache_not_cleaned_kinds(run_line, kind):
    found = [f for f in lint(parse_text(f"FROM a\nRUN {run_line}\n")) if f.rule == "cache-not-cleaned"]
    assert len(found) == 1 and kind in found[0].details["caches"]


@pytest.mark.parametrize("run_line", [
    "apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*",
    "apk add --no-cache curl",
    "pip install --no-cache-dir flask",
    "--mount=type=cache,target=/root/.cache/pip pip install flask",
    "npm ci && npm cache clean --force",
    "--mount=type=cache,target=/root/.npm npm ci",
    "yarn install && yarn cache clean",
    "gem install rails && rm -rf /usr/local/bundle/cache/*.gem",
    "--mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build go build ./...",
    "--mount=type=cache,target=/var/lib/apt,sharing=locked apt-get update && apt-get install -y curl",
])
def test_cache_cleaned_or_mounted(run_line):
    assert [f for f in lint(parse_text(f"FROM a\nRUN {run_line}\n")) if f.rule == "cache-not-cleaned"] == []


def test_pip_no_cache_env():
    assert run("FROM a\nENV PIP_NO_CACHE_DIR=1\nRUN pip install flask\n") == []


def test_toolchain_in_final_stage_and_single_stage():
    multi = "FROM a AS assets\nRUN true\nFROM debian\nRUN apt-get install -y build-essential libpq-dev git curl\n"
    found = [f for f in lint(parse_text(multi)) if f.rule == "toolchain-in-final-stage"]
    assert [f.line for f in found] == [4]
    assert found[0].details["packages"] == ["build-essential", "libpq-dev", "git"]
    single = "FROM debian\nRUN apt-get install -y libpq5 gcc\n"
    assert rules_at(single) == {(2, "single-stage-build")}
    assert rules_at("FROM golang:1.22\nCOPY . .\nRUN go build -o /app\n") >= {(1, "single-stage-build")}
    assert (1, "single-stage-build") not in rules_at("FROM eclipse-temurin:21-jre\nCOPY app.jar /\n")


def test_toolchain_installed_in_a_builder_stage_is_fine():
    text = "FROM debian AS build\nRUN apt-get install -y build-essential\nFROM debian\nCOPY --from=build /o /o\n"
    assert run(text) == []


def test_broad_copy_from():
    text = ("FROM alpine AS b\nRUN true\nFROM alpine\nCOPY --from=b /usr/lib /usr/lib\nCOPY --from=b /usr/lib/libpq.so.5 /usr/lib/\n"
            "COPY --from=b /usr/share/zoneinfo/ /usr/share/zoneinfo/\nCOPY --from=b / /\nCOPY --from=b /lib/x86_64-linux-gnu /x\n")
    assert {line for line, rule in rules_at(text) if rule == "broad-copy-from"} == {4, 7, 8}
    f = [x for x in lint(parse_text(text)) if x.line == 4][0]
    assert "bilge deps" in f.fix and "stored a second time" in f.message


def test_broad_copy_reaches_through_a_whole_root_copy():
    text = "FROM d AS build\nRUN true\nFROM d AS runtime\nCOPY --from=build /usr/lib /usr/lib\nFROM scratch\nCOPY --from=runtime / /\n"
    assert {line for line, rule in rules_at(text) if rule == "broad-copy-from"} == {4, 6}


def test_no_dockerignore(tmp_path):
    text = "FROM a\nCOPY . .\nCOPY src/ /src/\n"
    assert {(line, rule) for line, rule in rules_at(text, context=str(tmp_path))} == {(2, "no-dockerignore")}
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: x\n")
    from bilge.dockerfile.dockerignore import parse as parse_ignore

    found = lint(parse_text(text), LintOptions(context=str(tmp_path), dockerignore=parse_ignore("node_modules\n")))
    assert [(f.line, f.details["unexcluded"], f.bytes) for f in found] == [(2, [".git"], 7)]
    assert lint(parse_text(text), LintOptions(context=str(tmp_path), dockerignore=parse_ignore(".git\n"))) == []


def test_recursive_chown_after_copy():
    text = "FROM a\nCOPY . /app\nRUN chown -R app:app /app\nRUN chown -R app /app/log\n"
    assert rules_at(text) == {(2, "no-dockerignore"), (3, "recursive-chown")}


# --- pragmas and configuration -----------------------------------------------------------------------------

def test_pragmas_silence_findings():
    text = "FROM a\n# bilge: ignore=secret-arg\nARG NPM_TOKEN\nRUN npm ci\n"
    assert rules_at(text) == {(4, "cache-not-cleaned")}
    text2 = "# bilge: ignore-file=cache-not-cleaned,secret-arg\nFROM a\nARG NPM_TOKEN\nRUN npm ci\n"
    assert rules_at(text2) == set()


def test_apply_config():
    found = lint(parse_text("FROM a\nARG NPM_TOKEN\nRUN npm ci\n"))
    assert [f.rule for f in apply_config(found, disable=["secret-arg"])] == ["cache-not-cleaned"]
    assert [f.severity for f in apply_config(found, severity={"cache-not-cleaned": "high"})] == ["high", "high"]


def test_every_rule_is_documented(repo_root=None):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "lint.md").read_text()
    for rid, rule in RULES.items():
        assert f"`{rid}`" in doc, rid
        assert rule.title and rule.rationale and rule.fix


# --- name heuristics -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "mysecret", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
                                  "NPM_TOKEN", "BUNDLE_GITHUB__COM", "PIP_EXTRA_INDEX_URL", "API_KEY", "SSH_PRIVATE_KEY",
                                  "RAILS_MASTER_KEY", "SECRET_KEY_BASE", "DATABASE_URL", "NODE_AUTH_TOKEN"])
def test_secret_names(name):
    assert secret_name(name)


@pytest.mark.parametrize("name", ["RUBY_VERSION", "GPG_KEY", "GPG_KEYS", "PUBLIC_KEY", "TOKEN_URL", "SECRET_KEY_BASE_DUMMY",
                                  "PASSWORD_FILE", "BUNDLE_PATH", "BUNDLE_WITHOUT", "NODE_ENV", "PWD", "KEY_SERVER",
                                  "PASSENGER_VERSION", "AWS_REGION", "PYPI_USER", "TOKENIZERS_PARALLELISM"])
def test_not_secret_names(name):
    assert secret_name(name) is None


def test_values_and_files():
    assert secret_value("ghp_" + "a" * 36) == "GitHub token"
    assert secret_value("https://u:p4ss@host/") == "URL with a password"
    assert secret_value("https://${U}:${P}@host/") is None
    assert harmless_value("/etc/x") and harmless_value("true") and harmless_value("https://example.com/token")
    assert not harmless_value("shop")
    assert credential_file("deploy/id_rsa") and credential_file("/root/.aws/credentials")
    assert credential_file("id_rsa.pub") is None and credential_file(".env.example") is None


# --- one heuristic: lint decides names and values with bilge secrets' rules ---------------------------------------

LINT_ONLY = ["PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "UV_INDEX_URL", "DATABASE_URL", "REDIS_URL", "MONGODB_URI",
             "APP_DATABASE_DSN", "AZURE_STORAGE_CONNECTION_STRING", "GOPROXY", "AWS_ACCESS_KEY_ID"]


@pytest.mark.parametrize("name", [
    "GITHUB_TOKEN", "DB_PASSWORD", "apiKey", "ORG_GRADLE_PROJECT_signingKey", "TLS_KEY", "RSA_KEY", "GCP_SA_KEY",
    "BUNDLE_GITHUB__COM", "NPM_CONFIG__AUTH", "SECRET_KEY_BASE", "PASS", "db.password",
    "SECRET_KEY_BASE_DUMMY", "GPG_KEY", "TOKEN_URL", "AUTH_DOMAIN", "SSH_AUTH_SOCK", "BUNDLE_BUILD__NOKOGIRI",
    "EXAMPLE_TOKEN", "PASSWORD_FILE", "AWS_REGION", "RUBY_VERSION", "S3_KEY"])
def test_lint_and_secrets_agree_on_names(name):
    from bilge.secrets.names import is_secret_name
    from bilge.secrets.rules import load_ruleset

    assert (secret_name(name) is not None) == is_secret_name(name, load_ruleset().names)


@pytest.mark.parametrize("name", LINT_ONLY)
def test_names_that_carry_a_credential_are_lint_only(name):
    """An ARG without a default records whatever --build-arg passes: the name is enough for lint. bilge secrets
    sees values and judges a URL by its content, so these names are not secret-like there."""
    from bilge.secrets.names import is_secret_name
    from bilge.secrets.rules import load_ruleset

    assert secret_name(name) == "carries a credential"
    assert not is_secret_name(name, load_ruleset().names)
    assert run(f"FROM a\nARG {name}\nRUN make\n") == [(2, "secret-arg", "high")]


def test_previous_false_positives_are_gone():
    assert run("FROM a\nARG AUTH_DOMAIN\nARG SSH_AUTH_SOCK\nARG BUNDLE_BUILD__NOKOGIRI\nRUN make\n") == []
    # a value built from a variable that is not a secret stores no secret
    assert run("FROM a\nENV BUNDLE_GITHUB__COM=${GH_USER}:x-oauth-basic\nRUN make\n") == []


def test_values_use_the_secrets_placeholder_rules():
    for value in ("changeme", "<your-token>", "$TOKEN", "${A}:${B}", "1.2.3", "s3cr3t", "xxxx", "TOKEN"):
        assert harmless_value(value, "TOKEN"), value
    for value in ("shop", "q8Zt3LmN0pR5sV7w", "ghp_" + "Zx9" * 12):
        assert not harmless_value(value, "TOKEN"), value
    assert run("FROM a\nARG API_TOKEN=changeme\n") == []  # no RUN, no secret default: nothing recorded
    assert run("FROM a\nARG API_TOKEN=q8Zt3LmN0pR5sV7w\n") == [(2, "secret-arg", "high")]


def test_secret_literal_uses_the_secrets_scanner_and_matches_redact():
    """Any format rule of bilge secrets is found in a RUN (here Slack's webhook and a JWT, which lint's old list
    lacked), with the rule's title; every value reported is one bilge.redact masks in the same text."""
    import random
    import string

    from bilge.redact import redact

    rnd = random.Random(5)
    hook = "https://hooks.slack.com/services/T" + "".join(rnd.choice(string.ascii_uppercase + string.digits)
                                                           for _ in range(30))
    pw = "Pw" + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(14))
    run_line = f'curl -X POST {hook} -d x && DB_PASSWORD={pw} rake db:setup'
    found = {v: k for k, v in literal_credentials(run_line)}
    assert found == {hook: "Slack incoming webhook URL", pw: "DB_PASSWORD value"}
    masked = redact(run_line)
    assert all(v not in masked for v in found)
    out = lint(parse_text(f"FROM a\nRUN {run_line}\n"))
    assert [(f.line, f.rule, f.severity) for f in out] == [(2, "secret-literal", "high")]
    assert pw not in out[0].message and hook not in out[0].message
