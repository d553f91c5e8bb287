"""squash and slim never copy a secret they can see (issue 12): history and config redacted, unless
--keep-secrets; the output passes `bilge secrets` at its default severity."""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

from bilge.secrets.precision import github_token
from bilge.testing import config_for, docker_archive, layer_tar

SRC = Path(__file__).resolve().parents[2] / "src"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "SOURCE_DATE_EPOCH")}
    env.update({"PYTHONPATH": str(SRC), "NO_COLOR": "1"})
    return subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def leaky(tmp_path_factory) -> tuple[Path, str, str]:
    tok = github_token("ghp_", "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(30)))
    password = "Vq7" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(17))
    layers = [[("dir", "app"), ("file", "app/server.conf", b"port = 8080\n")],
              [("file", "app/run.sh", b"#!/bin/sh\nexec server\n", 0o755)]]
    history = ["/bin/sh -c #(nop) ADD file:x in /",
               f"|1 GITHUB_ACCESS_TOKEN={tok} /bin/sh -c apt-get install -y --no-install-recommends app"]
    cfg = config_for([layer_tar(x) for x in layers], history, env=["PATH=/bin", f"DB_PASSWORD={password}"])
    path = tmp_path_factory.mktemp("leaky") / "leaky.tar"
    docker_archive(path, layers, config=cfg)
    return path, tok, password


def _config_text(out: Path) -> str:
    import tarfile

    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        return tf.extractfile(manifest[0]["Config"]).read().decode()


@pytest.mark.parametrize("command", [["squash"], ["slim", "--keep", "/app"]])
def test_output_carries_no_secret_and_says_so(leaky, tmp_path, command):
    path, tok, password = leaky
    assert run("secrets", str(path)).returncode == 1  # the input leaks
    out = tmp_path / "out.tar"
    proc = run(*command, str(path), "-o", f"docker-archive:{out}")
    assert proc.returncode == 0, proc.stderr
    assert "secrets 2 redacted from the history and config" in proc.stdout
    assert tok not in proc.stdout + proc.stderr and password not in proc.stdout + proc.stderr
    cfg = _config_text(out)
    assert tok not in cfg and password not in cfg and "[redacted-by-bilge]" in cfg
    assert "DB_PASSWORD=[redacted-by-bilge]" in cfg  # the name stays: the runtime config keeps its shape
    check = run("secrets", str(out))
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("command", [["squash"], ["slim", "--keep", "/app"]])
def test_keep_secrets_copies_them_with_a_warning(leaky, tmp_path, command):
    path, tok, _ = leaky
    out = tmp_path / "out.tar"
    proc = run(*command, str(path), "-o", f"docker-archive:{out}", "--keep-secrets", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert "--keep-secrets" in proc.stderr and "warning" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["secrets_kept"] is True and doc["secrets_redacted"] == []
    assert tok in _config_text(out)
    assert run("secrets", str(out)).returncode == 1


def test_json_lists_what_was_redacted(leaky, tmp_path):
    path, tok, _ = leaky
    proc = run("squash", str(path), "-o", f"docker-archive:{tmp_path / 'o.tar'}", "-f", "json")
    doc = json.loads(proc.stdout)
    assert doc["secrets_kept"] is False and len(doc["secrets_redacted"]) == 2
    assert any("DB_PASSWORD" in a for a in doc["secrets_redacted"]) and tok not in proc.stdout
