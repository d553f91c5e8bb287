"""`bilge diff` with a side in a real registry (Debian's docker-registry on loopback, htpasswd auth):
a pushed image against its local layout shows nothing; against a changed image, exactly the change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bilge.testing import oci_layout
from tests.integration.conftest import require_tool
from tests.integration.registry_env import PASSWORD, USER, Registry

SRC = Path(__file__).resolve().parents[2] / "src"
LAYERS = [
    [("dir", "etc"), ("file", "etc/os-release", b"ID=test\n"), ("file", "etc/big", b"B" * 70_000)],
    [("dir", "app"), ("file", "app/run.sh", b"#!/bin/sh\necho hi\n", 0o755), ("whiteout", "etc/big")],
]
CHANGED = [LAYERS[0], [("dir", "app"), ("file", "app/run.sh", b"#!/bin/sh\necho HI\n", 0o755)]]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    require_tool("docker-registry")
    require_tool("skopeo")
    require_tool("htpasswd")
    reg = Registry(tmp_path_factory.mktemp("registry-diff"), auth="htpasswd").start()
    yield reg
    reg.close()


def diff_json(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "bilge", "diff", *args, "--format", "json",
                           "--creds", f"{USER}:{PASSWORD}", "--tls-verify=false"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_registry_side_against_local_layouts(registry, tmp_path):
    oci_layout(tmp_path / "v1", [{"layers": LAYERS, "ref": "v1"}], archive=False)
    oci_layout(tmp_path / "v2", [{"layers": CHANGED, "ref": "v2", "compression": "zstd"}], archive=False)
    ref = registry.push(f"oci:{tmp_path / 'v1'}:v1", "team/app:1")
    same = diff_json(ref, f"oci:{tmp_path / 'v1'}:v1")
    assert same["entries"] == [] and same["summary"]["shared_layers"] == 2
    changed = diff_json(ref, f"oci:{tmp_path / 'v2'}:v2")
    got = {e["path"]: (e["change"], e["what"], e["a_size"], e["b_size"]) for e in changed["entries"]}
    assert got == {"/app/run.sh": ("modified", ["content"], 18, 18), "/etc/big": ("added", [], 0, 70_000)}
    assert changed["summary"]["delta"]["visible_bytes"] == 70_000
