"""History (legacy builder and BuildKit forms), Env, Labels, Cmd and annotations."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from bilge.history import parse_created_by
from bilge.image import Image, Layer, align_history
from bilge.secrets import scan_image_config
from bilge.secrets.model import ScanStats
from bilge.secrets.precision import github_token
from bilge.secrets.rules import load_ruleset
from bilge.secrets.textscan import Scanner

RNG = random.Random(7)
SCANNER = Scanner(load_ruleset())


def tok() -> str:
    return github_token("ghp_", "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(30)))


def make_image(history: list[dict[str, Any]], *, env: list[str] | None = None, labels: dict[str, str] | None = None,
               cmd: list[str] | None = None, entrypoint: list[str] | None = None,
               annotations: dict[str, str] | None = None, layers: int | None = None) -> Image:
    n = layers if layers is not None else sum(1 for h in history if not h.get("empty_layer"))
    entries, per = align_history(history, n)
    lays = tuple(Layer(i, f"sha256:{i + 1:064x}", None, "application/vnd.oci.image.layer.v1.tar", 10, per[i])
                 for i in range(n))
    cfg: dict[str, Any] = {"Env": env or ["PATH=/usr/bin:/bin"]}
    if labels is not None:
        cfg["Labels"] = labels
    if cmd is not None:
        cfg["Cmd"] = cmd
    if entrypoint is not None:
        cfg["Entrypoint"] = entrypoint
    return Image("docker-archive:test.tar", "docker-archive", None, "sha256:" + "a" * 64, None, {"config": cfg},
                 None, lays, entries, annotations=annotations or {})


def scan(image: Image):
    stats = ScanStats()
    return scan_image_config(image, SCANNER, stats), stats


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("line,instruction,args,assigns", [
    ("|1 GITHUB_ACCESS_TOKEN=ABC!123456 /bin/sh -c bundle install", "RUN", [("GITHUB_ACCESS_TOKEN", "ABC!123456")], []),
    ("|2 A=one two B=x /bin/sh -c echo hi", "RUN", [("A", "one two"), ("B", "x")], []),
    ("RUN |1 TOKEN=abc /bin/sh -c make # buildkit", "RUN", [("TOKEN", "abc")], []),
    ("RUN /bin/sh -c apt-get update # buildkit", "RUN", [], []),
    ("/bin/sh -c apt-get update", "RUN", [], []),
    ("|1 X=y /bin/bash -o pipefail -c make", "RUN", [("X", "y")], []),
    ("/bin/sh -c #(nop)  ENV DB_PASSWORD=hunter2", "ENV", [], [("DB_PASSWORD", "hunter2")]),
    ("/bin/sh -c #(nop)  ENV A=hello world B=2", "ENV", [], [("A", "hello world"), ("B", "2")]),
    ("ENV DB_PASSWORD=hunter2 X=1", "ENV", [], [("DB_PASSWORD", "hunter2"), ("X", "1")]),
    ('/bin/sh -c #(nop)  LABEL api.token="abc def" other=1', "LABEL", [], [("api.token", "abc def"), ("other", "1")]),
    ("LABEL org.opencontainers.image.source=https://x", "LABEL", [], [("org.opencontainers.image.source", "https://x")]),
    ("ARG GITHUB_TOKEN=ghp_ABC123TOKEN", "ARG", [], [("GITHUB_TOKEN", "ghp_ABC123TOKEN")]),
    ("/bin/sh -c #(nop)  ARG GITHUB_TOKEN", "ARG", [], []),
    ("COPY . /app # buildkit", "COPY", [], []),
    ("/bin/sh -c #(nop) ADD file:abc in /credentials.json ", "ADD", [], []),
])
def test_parse_created_by(line, instruction, args, assigns):
    p = parse_created_by(line)
    assert p.instruction == instruction
    assert [(a.name, a.value) for a in p.build_args] == args
    assert [(a.name, a.value) for a in p.assignments] == assigns
    for a in (*p.build_args, *p.assignments):
        assert line[a.start:a.end] == a.value


# --- the seed's story --------------------------------------------------------------------------


@pytest.mark.parametrize("buildkit", [False, True])
def test_build_arg_token_found_once_with_every_history_entry(buildkit: bool):
    t = tok()
    run = (lambda cmd: f"RUN |1 GITHUB_ACCESS_TOKEN={t} /bin/sh -c {cmd} # buildkit") if buildkit else (
        lambda cmd: f"|1 GITHUB_ACCESS_TOKEN={t} /bin/sh -c {cmd}")
    arg = "ARG GITHUB_ACCESS_TOKEN" if buildkit else "/bin/sh -c #(nop)  ARG GITHUB_ACCESS_TOKEN"
    image = make_image([
        {"created_by": "/bin/sh -c #(nop) ADD file:0 in / "},
        {"created_by": arg, "empty_layer": True},
        {"created_by": run('bundle config --global frozen 1 && BUNDLE_GITHUB__COM="$GITHUB_ACCESS_TOKEN:x-oauth-basic" bundle install')},
        {"created_by": run("yarn install")},
    ])
    findings, stats = scan(image)
    assert stats.history_entries == 4
    assert len(findings) == 1
    f = findings[0]
    assert (f.rule, f.severity, f.location.kind) == ("github-pat", "critical", "history")
    assert (f.location.history_index, f.also_in_history, f.location.layer) == (2, (3,), 1)
    assert f.location.key == "GITHUB_ACCESS_TOKEN"
    assert f.secret == t and t not in f.masked and f.masked.startswith("ghp_")
    assert "--mount=type=secret" in f.fix


def test_seed_value_with_no_known_format_is_found_by_name():
    image = make_image([{"created_by": "|1 GITHUB_ACCESS_TOKEN=ABC!123456 /bin/sh -c bundle install"}])
    [f] = scan(image)[0]
    assert (f.rule, f.severity, f.secret, f.location.key) == ("secret-assignment", "high", "ABC!123456", "GITHUB_ACCESS_TOKEN")


def test_arg_without_value_and_references_are_not_findings():
    image = make_image([
        {"created_by": "/bin/sh -c #(nop)  ARG GITHUB_ACCESS_TOKEN", "empty_layer": True},
        {"created_by": '/bin/sh -c BUNDLE_GITHUB__COM="$GITHUB_ACCESS_TOKEN:x-oauth-basic" bundle install'},
        {"created_by": "/bin/sh -c #(nop)  ENV PIP_EXTRA_INDEX_URL=https://${PYPI_USER}:${PYPI_PASSWORD}@pypi.internal/simple",
         "empty_layer": True},
        {"created_by": "ENV GPG_KEY=FB5DB77FD5C118B80511ADA8A6310ACC4672475C PYTHON_VERSION=3.12.1", "empty_layer": True},
        {"created_by": "ARG TOKEN_URL=https://example.com/token", "empty_layer": True},
    ])
    assert scan(image)[0] == []


def test_env_label_arg_default_and_run_literal():
    pw, key = "Xq9!mZ2#pL", tok()
    image = make_image(
        [{"created_by": f"/bin/sh -c #(nop)  ENV DB_PASSWORD={pw}", "empty_layer": True},
         {"created_by": f"ARG DEPLOY_TOKEN={key}", "empty_layer": True},
         {"created_by": f'/bin/sh -c #(nop)  LABEL ci.api-key="{pw}"', "empty_layer": True},
         {"created_by": f"/bin/sh -c curl -H 'Authorization: token {key}' https://api.github.com/x"}],
        env=["PATH=/bin", f"DB_PASSWORD={pw}"], labels={"ci.api-key": pw})
    findings, _ = scan(image)
    got = {(f.location.kind, f.location.history_index, f.location.key, f.rule, f.also_in_history) for f in findings}
    # the ENV and LABEL lines that set the config's values are folded into the env/label findings
    assert got == {
        ("history", 1, "DEPLOY_TOKEN", "github-pat", ()),
        ("history", 3, None, "github-pat", ()),
        ("env", None, "DB_PASSWORD", "secret-assignment", (0,)),
        ("label", None, "ci.api-key", "secret-assignment", (2,)),
    }
    fixes = {(f.location.kind, f.location.history_index): f.fix for f in findings}
    assert "ENV values" in fixes[("env", None)] and "ARG default" in fixes[("history", 1)]
    assert "Labels" in fixes[("label", None)] and "RUN command" in fixes[("history", 3)]


def test_env_overridden_later_stays_in_history():
    image = make_image([{"created_by": "ENV DB_PASSWORD=Xq9!mZ2#pL", "empty_layer": True},
                        {"created_by": "ENV DB_PASSWORD=", "empty_layer": True}], env=["DB_PASSWORD="], layers=0)
    [f] = scan(image)[0]
    assert (f.location.kind, f.location.history_index, f.secret) == ("history", 0, "Xq9!mZ2#pL")
    assert "ENV values" in f.fix


def test_cmd_entrypoint_and_annotations():
    t = tok()
    image = make_image([{"created_by": "/bin/sh -c true"}], cmd=["app", "--password", "S3cure!Pa55"],
                       entrypoint=["/entry.sh", f"--token={t}"],
                       annotations={"org.opencontainers.image.description": "demo", "ci.token": "Zk2m9QpL0xV7nB4c"})
    findings, stats = scan(image)
    got = sorted((f.location.kind, f.location.key, f.rule) for f in findings)
    assert got == [("annotation", "ci.token", "secret-assignment"), ("config", "Cmd", "secret-assignment"),
                   ("config", "Entrypoint", "github-pat")]
    assert stats.config_values >= 5


def test_non_ascii_history_offsets_stay_right():
    t = tok()
    image = make_image([{"created_by": f"/bin/sh -c echo 'héllo wörld' && export TOKEN={t}"}])
    [f] = scan(image)[0]
    assert f.secret == t


def test_fingerprint_stable_across_history_positions_and_rebuilds():
    t = tok()
    a = make_image([{"created_by": "/bin/sh -c true"}, {"created_by": f"|1 TOKEN={t} /bin/sh -c make"}])
    b = make_image([{"created_by": f"|1 TOKEN={t} /bin/sh -c make"}])
    fa, fb = scan(a)[0][0], scan(b)[0][0]
    assert fa.fingerprint == fb.fingerprint and fa.location.history_index != fb.location.history_index
    c = make_image([{"created_by": f"|1 TOKEN={tok()} /bin/sh -c make"}])
    assert scan(c)[0][0].fingerprint != fa.fingerprint


def test_bundler_host_credentials_in_env_and_build_args():
    image = make_image([{"created_by": "|1 BUNDLE_GITHUB__COM=deploy:k3Jd93kd0Q /bin/sh -c bundle install"}],
                       env=["BUNDLE_GEMS__ACME__COM=ci:Zt8x2Lq", "BUNDLE_WITHOUT=development:test",
                            "BUNDLE_BUILD__NOKOGIRI=--use-system-libraries"])
    got = sorted((f.location.kind, f.location.key, f.secret) for f in scan(image)[0])
    assert got == [("env", "BUNDLE_GEMS__ACME__COM", "ci:Zt8x2Lq"),
                   ("history", "BUNDLE_GITHUB__COM", "deploy:k3Jd93kd0Q")]
