"""`bilge lint` on every Dockerfile in ../shared/fixtures/dockerfiles/, reviewed by hand against SOURCES.md.

The expected table was written from a line-by-line review of each file and the notes in SOURCES.md (which
record facts about the files, not linter output): each entry below is a finding a reviewer agreed with,
and anything not listed (for instance ``ARG RUBY_VERSION``, the official images' ``GPG_KEY``, the correctly
used ``--mount=type=secret``, ``TOKEN_URL``, ``SECRET_KEY_BASE_DUMMY``, a one-file ``COPY --from``) must not
be reported. The build context is the fixtures directory itself: it has no .dockerignore and no credential
files.
"""

from __future__ import annotations

import re

import pytest

from bilge.dockerfile.parse import parse_file
from bilge.dockerfile.rules import LintOptions, lint

EXPECTED: dict[str, set[tuple[int, str, str]]] = {
    "page__cleansystemsconsulting__stop-copying-everything-into-your-docker-image": {(3, "no-dockerignore", "low"), (4, "cache-not-cleaned", "low")},
    "page__insightengines__how-to-keep-docker-images-lean-part-2-Dockerfile-original": {(2, "cache-not-cleaned", "low"), (3, "cache-not-cleaned", "low"), (3, "single-stage-build", "medium"), (5, "cleanup-later-layer", "medium"), (6, "cleanup-later-layer", "medium")},
    "page__sjoerdlangkemper__avoid-docker-arg-for-secrets": {(2, "secret-arg", "high")},
    "page__xygeni__docker-build-args-hidden-vector-for-secret-leaks": {(2, "secret-arg", "high"), (3, "cache-not-cleaned", "low")},
    "pattern__debian-escape-backtick-awscli": {(14, "cache-not-cleaned", "low"), (6, "secret-arg", "high"), (7, "secret-arg", "high"), (8, "secret-arg", "high"), (22, "cleanup-later-layer", "medium"), (25, "cleanup-later-layer", "medium"), (35, "secret-copy", "high")},
    "pattern__debian-pgbouncer-broad-copies": {(23, "broad-copy-from", "medium"), (24, "broad-copy-from", "medium"), (25, "broad-copy-from", "medium"), (35, "broad-copy-from", "medium")},
    "pattern__go-private-modules-scratch": {(6, "secret-arg", "medium"), (10, "secret-in-layer", "medium"), (14, "no-dockerignore", "low")},
    "pattern__java-temurin-gradle-aws-builder": {(4, "secret-arg", "medium"), (5, "secret-arg", "medium")},
    "pattern__java-temurin-single-stage-maven": {(3, "cache-not-cleaned", "low"), (1, "single-stage-build", "medium"), (3, "single-stage-build", "medium"), (8, "secret-copy", "high"), (10, "cache-not-cleaned", "low"), (12, "no-dockerignore", "low"), (13, "secret-copy", "high"), (17, "secret-arg", "high"), (18, "cache-not-cleaned", "low"), (20, "cleanup-later-layer", "medium")},
    "pattern__node-npmrc-token-builder": {(6, "secret-arg", "medium")},
    "pattern__node-single-stage-npmrc-copy": {(4, "cache-not-cleaned", "low"), (4, "single-stage-build", "medium"), (9, "secret-arg", "high"), (10, "secret-copy", "high"), (11, "cache-not-cleaned", "low"), (13, "no-dockerignore", "low"), (16, "cache-not-cleaned", "low"), (16, "cleanup-later-layer", "medium"), (17, "cleanup-later-layer", "medium"), (18, "cleanup-later-layer", "medium")},
    "pattern__node-yarn-secret-and-cache-mounts": {(15, "no-dockerignore", "low")},
    "pattern__python-django-db-password": {(4, "secret-arg", "medium"), (5, "secret-arg", "medium"), (24, "broad-copy-from", "medium"), (27, "secret-copy", "high"), (28, "no-dockerignore", "low"), (30, "secret-arg", "high")},
    "pattern__python-official-style-gpg-key": {(45, "cache-not-cleaned", "low")},
    "pattern__python-pip-extra-index-single-stage": {(4, "secret-arg", "high"), (8, "cache-not-cleaned", "low"), (8, "single-stage-build", "medium"), (18, "secret-copy", "high"), (22, "cache-not-cleaned", "low"), (24, "no-dockerignore", "low"), (25, "secret-copy", "high"), (26, "cache-not-cleaned", "low")},
    "pattern__python-wheels-multistage-clean": set(),
    "pattern__rails-alpine-passenger-github-token": {(31, "secret-arg", "medium"), (40, "no-dockerignore", "low"), (55, "broad-copy-from", "medium")},
    "pattern__rails-alpine-single-stage-cleanup-later": {(27, "cache-not-cleaned", "low"), (4, "secret-arg", "high"), (9, "cache-not-cleaned", "low"), (9, "single-stage-build", "medium"), (24, "cache-not-cleaned", "low"), (29, "no-dockerignore", "low"), (33, "cleanup-later-layer", "medium"), (34, "cleanup-later-layer", "medium"), (35, "cleanup-later-layer", "medium")},
    "pattern__rails-copied-credentials": {(10, "secret-copy", "medium"), (11, "secret-copy", "medium"), (30, "secret-copy", "high"), (31, "secret-copy", "high"), (32, "no-dockerignore", "low"), (37, "secret-arg", "high"), (38, "secret-arg", "high")},
    "pattern__rails-heredoc-mysql2-alpine": {(6, "secret-arg", "medium"), (22, "no-dockerignore", "low"), (40, "no-dockerignore", "low")},
    "pattern__rails-multitarget-dev-test-prod": {(18, "secret-arg", "medium"), (31, "secret-in-layer", "medium"), (34, "no-dockerignore", "low"), (60, "no-dockerignore", "low"), (61, "cleanup-later-layer", "medium")},
    "pattern__rails-slim-secret-and-cache-mounts": {(29, "no-dockerignore", "low")},
    "pattern__rails-slim-toolchain-in-final": {(3, "secret-copy", "medium"), (11, "cache-not-cleaned", "low"), (11, "toolchain-in-final-stage", "medium"), (12, "cache-not-cleaned", "low"), (15, "secret-arg", "high"), (16, "secret-arg", "high"), (18, "cache-not-cleaned", "low"), (20, "no-dockerignore", "low"), (23, "secret-arg", "high")},
    "pattern__ruby-onbuild-base": {(8, "cache-not-cleaned", "low"), (8, "single-stage-build", "medium"), (12, "cache-not-cleaned", "low"), (13, "cache-not-cleaned", "low"), (14, "cleanup-later-layer", "medium"), (21, "secret-arg", "high"), (23, "cache-not-cleaned", "low"), (23, "secret-in-layer", "high")},
    "seed__rails-multistage": {(59, "secret-arg", "medium"), (70, "no-dockerignore", "low"), (95, "broad-copy-from", "medium"), (101, "broad-copy-from", "medium")},
}


def findings(fixture_dockerfiles, name: str, **kw):
    path = fixture_dockerfiles / f"{name}.Dockerfile"
    return lint(parse_file(path), LintOptions(context=str(fixture_dockerfiles), **kw))


def test_the_table_covers_every_fixture(fixture_dockerfiles):
    assert {p.name.removesuffix(".Dockerfile") for p in fixture_dockerfiles.glob("*.Dockerfile")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_findings(fixture_dockerfiles, name):
    got = {(f.line, f.rule, f.severity) for f in findings(fixture_dockerfiles, name)}
    assert got == EXPECTED[name]


# --- the acceptance items, spelled out -----------------------------------------------------------------

def test_seed_reports_the_builder_token_and_each_whole_directory_copy(fixture_dockerfiles):
    got = findings(fixture_dockerfiles, "seed__rails-multistage")
    secret = [f for f in got if f.rule == "secret-arg"]
    assert [(f.line, f.stage, f.severity) for f in secret] == [(59, "builder", "medium")]
    assert "GITHUB_ACCESS_TOKEN" in secret[0].message and "line 60" in secret[0].message
    assert sorted(f.line for f in got if f.rule == "broad-copy-from") == [95, 101]
    # nothing about the final stage (lines 84-113) leaking the token
    assert not [f for f in got if f.rule.startswith("secret") and f.line >= 84]
    assert not [f for f in got if f.rule.startswith("secret") and f.severity == "high"]


def test_no_false_positive_on_version_args_gpg_keys_and_secret_mounts(fixture_dockerfiles):
    for name in EXPECTED:
        df = parse_file(fixture_dockerfiles / f"{name}.Dockerfile")
        for f in findings(fixture_dockerfiles, name):
            if not f.rule.startswith("secret"):
                continue
            text = next(i for i in df.instructions if i.line == f.line).original
            for var in f.details.get("names", []):
                assert not re.fullmatch(r"(RUBY|NODE|GO|ALPINE)_VERSION|GPG_KEY|TOKEN_URL|SECRET_KEY_BASE_DUMMY", var), (
                    name, f.line, var)
            assert "type=secret" not in text, (name, f.line)


def test_secret_values_never_printed(fixture_dockerfiles):
    got = findings(fixture_dockerfiles, "page__xygeni__docker-build-args-hidden-vector-for-secret-leaks")
    assert all("ghp_ABC123TOKEN" not in f.message for f in got)
    got = findings(fixture_dockerfiles, "pattern__python-django-db-password")
    env = [f for f in got if f.line == 30][0]
    assert "=shop" not in env.message and "(4 chars)" in env.message
    shown = findings(fixture_dockerfiles, "pattern__python-django-db-password", show_secrets=True)
    assert "DB_PASSWORD=shop" in [f for f in shown if f.line == 30][0].message


def test_multitarget_other_targets(fixture_dockerfiles):
    name = "pattern__rails-multitarget-dev-test-prod"
    dev = {(f.line, f.rule, f.severity) for f in findings(fixture_dockerfiles, name, target="development")}
    # shipped as the development image: deps' token, cache and later cleanup now count
    assert (18, "secret-arg", "high") in dev and (31, "secret-in-layer", "high") in dev
    assert (19, "toolchain-in-final-stage", "medium") in dev
    assert (19, "cache-not-cleaned", "low") in dev and (35, "cleanup-later-layer", "medium") in dev
    # assets and production are not part of this target (no-dockerignore is about the context: every stage)
    assert not [f for f in dev if f[0] >= 46 and f[1] != "no-dockerignore"]
    prod = findings(fixture_dockerfiles, name)
    note = [f for f in prod if f.line == 18][0].message
    assert '"development"' in note and '"test"' in note  # the stages that inherit the token are named


def test_builder_secret_copies_carried_into_the_final_stage(tmp_path):
    (tmp_path / ".npmrc").write_text("//r/:_authToken=x\n")
    df = tmp_path / "Dockerfile"
    df.write_text("FROM n AS build\nWORKDIR /app\nCOPY . .\nRUN make\nFROM n\nCOPY --from=build /app /app\n")
    got = lint(parse_file(df), LintOptions(context=str(tmp_path)))
    copy = [f for f in got if f.rule == "secret-copy"][0]
    assert copy.severity == "high" and "Line 6 copies it into the shipped image" in copy.message
