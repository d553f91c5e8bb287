"""`bilge secrets` as a user runs it: exit codes, formats, masking everywhere, silencing, config."""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest

from bilge.secrets.precision import github_token
from bilge.testing import config_for, docker_archive, layer_tar

RNG = random.Random(31337)


def rnd(n: int) -> str:
    return "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(n))


TOKEN = github_token("ghp_", rnd(30))
PASSWORD = "Qz8!" + rnd(12)
KEY_BODY = "\n".join(rnd(64) for _ in range(12))
KEY = f"-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----\n"
RAW_SECRETS = [TOKEN, PASSWORD, KEY_BODY.splitlines()[3]]


def run(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def leaky_image(path: Path) -> None:
    layers = [
        [("dir", "app"), ("file", "app/server.conf", b"port = 8080\n")],
        [("dir", "root"), ("dir", "root/.ssh"), ("file", "root/.ssh/id_rsa", KEY.encode(), 0o600)],
        [("whiteout", "root/.ssh/id_rsa")],
    ]
    tars = [layer_tar(items) for items in layers]
    cfg = config_for(tars, env=["PATH=/usr/bin:/bin", f"DB_PASSWORD={PASSWORD}"], raw_history=[
        {"created_by": "/bin/sh -c #(nop) ADD file:x in / "},
        {"created_by": "/bin/sh -c #(nop)  ARG GITHUB_ACCESS_TOKEN", "empty_layer": True},
        {"created_by": f"|1 GITHUB_ACCESS_TOKEN={TOKEN} /bin/sh -c cp key /root/.ssh/id_rsa && bundle install"},
        {"created_by": f"|1 GITHUB_ACCESS_TOKEN={TOKEN} /bin/sh -c rm /root/.ssh/id_rsa"},
        {"created_by": f"/bin/sh -c #(nop)  ENV DB_PASSWORD={PASSWORD}", "empty_layer": True},
    ])
    docker_archive(path, layers, config=cfg)


def clean_image(path: Path, extra: list | None = None) -> None:
    docker_archive(path, [[("dir", "app"), ("file", "app/server.conf", b"port = 8080\n"), *(extra or [])]])


@pytest.fixture(scope="module")
def leaky(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "leaky.tar"
    leaky_image(path)
    return path


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in RAW_SECRETS:
            assert secret not in text


def test_text_report_exit_1_and_masked(leaky):
    proc = run("secrets", str(leaky))
    assert proc.returncode == 1, proc.stderr
    assert_no_secret(proc.stdout, proc.stderr)
    out = proc.stdout
    assert "github-pat" in out and "private-key" in out and "secret-assignment" in out
    assert "/root/.ssh/id_rsa:1  in layer 1 — deleted in layer 2, but layer 1 still ships it" in out
    assert "history #2 (layer 1)  GITHUB_ACCESS_TOKEN  (also in history #3)" in out
    assert "GITHUB_ACCESS_TOKEN=ghp_" in out  # the history line is shown, masked
    assert "findings at or above high" in out


def test_json_schema_and_masking(leaky):
    proc = run("secrets", str(leaky), "--format", "json")
    assert proc.returncode == 1
    assert_no_secret(proc.stdout, proc.stderr)
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "bilge.secrets/1" and doc["threshold"] == "high"
    for f in doc["findings"]:
        assert set(f) >= {"rule", "severity", "location", "deleted", "match", "fingerprint"}
        assert set(f["location"]) >= {"kind", "layer", "path", "line", "history_index"}
        assert len(f["fingerprint"]) == 20
    by_rule = {(f["rule"], f["location"]["kind"]): f for f in doc["findings"]}
    key = by_rule[("private-key", "file")]
    assert key["deleted"] is True and key["location"]["layer"] == 1 and key["location"]["path"] == "root/.ssh/id_rsa"
    assert key["hidden_by"] == 2 and key["location"]["line"] == 1
    gh = by_rule[("github-pat", "history")]
    assert gh["location"]["history_index"] == 2 and gh["also_in_history"] == [3] and gh["match"] == TOKEN[:6] + "…(40 chars)"
    env = by_rule[("secret-assignment", "env")]
    assert env["location"]["key"] == "DB_PASSWORD" and env["also_in_history"] == [4]  # the ENV line, folded in
    assert ("secret-assignment", "history") not in by_rule
    assert doc["summary"]["at_or_above_threshold"] == len(doc["findings"])


def test_sarif_is_2_1_0_with_rules_and_fingerprints(leaky, tmp_path):
    out = tmp_path / "secrets.sarif"
    proc = run("secrets", str(leaky), "--format", "sarif", "--output", str(out))
    assert proc.returncode == 1 and proc.stdout == ""
    text = out.read_text()
    assert_no_secret(text, proc.stderr)
    log = json.loads(text)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    run0 = log["runs"][0]
    rule_ids = [r["id"] for r in run0["tool"]["driver"]["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for res in run0["results"]:
        assert res["ruleId"] in rule_ids and rule_ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["partialFingerprints"]["bilge/v1"]
        assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    files = [r for r in run0["results"] if r["properties"]["kind"] == "file"]
    assert files[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "root/.ssh/id_rsa"
    assert files[0]["properties"]["deleted"] is True


def test_show_secrets_prints_them_and_only_then(leaky, tmp_path):
    proc = run("secrets", str(leaky), "--format", "json", "--show-secrets")
    assert TOKEN in proc.stdout and PASSWORD in proc.stdout
    assert json.loads(proc.stdout)["secrets_shown"] is True
    proc = run("secrets", str(leaky), "--show-secrets")
    assert TOKEN in proc.stdout


def test_exit_codes_by_severity(tmp_path):
    clean = tmp_path / "clean.tar"
    clean_image(clean)
    assert run("secrets", str(clean)).returncode == 0
    medium = tmp_path / "medium.tar"  # a weak password in a config file is medium
    clean_image(medium, [("file", "app/db.ini", b"[db]\npassword = hunter22\n")])
    proc = run("secrets", str(medium))
    assert proc.returncode == 0 and "1 below" in proc.stdout and "hunter22" not in proc.stdout
    proc = run("secrets", str(medium), "--severity", "medium")
    assert proc.returncode == 1 and "secret-assignment" in proc.stdout and "hunter22" not in proc.stdout


def test_bad_input_exits_2_with_one_line(tmp_path):
    cases = [
        ("secrets", str(tmp_path / "missing.tar")),
        ("secrets", str(tmp_path)),
        ("secrets", "--severity", "urgent", str(tmp_path)),
        ("secrets", "--format", "xml", str(tmp_path)),
    ]
    for args in cases:
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_output_never_partial(leaky, tmp_path):
    missing_dir = tmp_path / "no" / "such" / "out.json"
    proc = run("secrets", str(leaky), "-f", "json", "-o", str(missing_dir))
    assert proc.returncode == 2 and "bilge: error:" in proc.stderr
    assert not missing_dir.exists()
    ok = tmp_path / "out.json"
    assert run("secrets", str(leaky), "-f", "json", "-o", str(ok)).returncode == 1
    assert json.loads(ok.read_text())["schema"] == "bilge.secrets/1"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.json")] == []


def test_bilgeignore_silences_with_reason(leaky, tmp_path):
    doc = json.loads(run("secrets", str(leaky), "-f", "json").stdout)
    fps = [f["fingerprint"] for f in doc["findings"]]
    (tmp_path / ".bilgeignore").write_text("# accepted\n" + "".join(f"{fp} test image, values are fake\n" for fp in fps))
    proc = run("secrets", str(leaky), "-f", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc2 = json.loads(proc.stdout)
    assert doc2["findings"] == [] and len(doc2["silenced"]) == len(fps)
    assert doc2["silenced"][0]["reason"] == "test image, values are fake"
    assert doc2["silenced"][0]["source"].endswith(".bilgeignore:2")
    assert_no_secret(proc.stdout)
    text = run("secrets", str(leaky), cwd=tmp_path).stdout
    assert f"{len(fps)} silenced" in text
    (tmp_path / ".bilgeignore").write_text(f"{fps[0]}\n")
    proc = run("secrets", str(leaky), cwd=tmp_path)
    assert proc.returncode == 2 and "needs a reason" in proc.stderr


def test_config_file_disables_rules_and_silences_by_rule(leaky, tmp_path):
    cfg = tmp_path / ".bilge.toml"
    cfg.write_text('[secrets]\ndisable = ["github-pat", "secret-assignment"]\n'
                   '[[secrets.ignore]]\nrule = "private-key"\npath = "root/.ssh/*"\nreason = "throw-away test key"\n')
    proc = run("secrets", str(leaky), "-f", "json", "--config", str(cfg))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert doc["findings"] == [] and [s["rule"] for s in doc["silenced"]] == ["private-key"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[secrets]\nseverity = {jwt = "urgent"}\n')
    proc = run("secrets", str(leaky), "--config", str(bad))
    assert proc.returncode == 2 and "unknown severity" in proc.stderr


def test_config_only_reads_no_layer(leaky):
    doc = json.loads(run("secrets", str(leaky), "-f", "json", "--config-only").stdout)
    assert doc["files_scanned"] is False and doc["stats"]["scanned"]["files"] == 0
    assert {f["location"]["kind"] for f in doc["findings"]} == {"history", "env"}


def test_list_rules():
    proc = run("secrets", "--list-rules")
    assert proc.returncode == 0
    assert "github-pat" in proc.stdout and "netrc" in proc.stdout and "secret-assignment" in proc.stdout


def test_demo_image_finds_the_build_arg_token():
    proc = run("secrets", "--format", "json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert [(f["rule"], f["location"]["kind"], f["location"]["key"]) for f in doc["findings"]] == [
        ("github-pat", "history", "GITHUB_ACCESS_TOKEN")]
    import re

    assert not re.search(r"ghp_[A-Za-z0-9]{36}", proc.stdout)
