"""docker-daemon: both ways, and a bare NAME:TAG, against the real engine; compared with what
``docker save`` gives for the same image (read as docker-archive:) and with ``docker image inspect``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.integration.conftest import DOCKER, docker_rmi, docker_save, run

BILGE = [sys.executable, "-m", "bilge"]
TAG_PREFIX = "registry-branch-test"


def bilge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BILGE, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def analyze(*args: str, env: dict[str, str] | None = None) -> dict:
    proc = bilge("analyze", "-f", "json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_daemon_source_equals_docker_save(base_image, tmp_path):
    saved = docker_save(base_image, tmp_path / "base.tar")
    via_engine = analyze(f"docker-daemon:{base_image}")
    via_save = analyze(f"docker-archive:{saved}")
    assert via_engine["summary"] == via_save["summary"]
    assert [x["diff_id"] for x in via_engine["layers"]] == [x["diff_id"] for x in via_save["layers"]]
    engine_id = run([DOCKER, "image", "inspect", "--format", "{{.Id}}", base_image]).strip()
    assert via_engine["image"]["image_id"] == engine_id
    assert via_engine["image"]["transport"] == "docker-daemon"


def test_bare_name_prefers_the_engine_and_says_so(base_image):
    tag = f"{TAG_PREFIX}:bare"
    run([DOCKER, "tag", base_image, tag])
    try:
        proc = bilge("analyze", "-q", tag)
        assert proc.returncode == 0, proc.stderr
        assert "from the Docker engine" in proc.stderr
    finally:
        docker_rmi(tag)
    # not in the engine: the registry is tried (none is reachable here) and the one line says both
    proc = bilge("analyze", f"{TAG_PREFIX}:absent")
    assert proc.returncode == 2
    assert "not in the Docker engine" in proc.stderr and "registry" in proc.stderr
    assert proc.stderr.count("bilge: error:") == 1


def test_engine_errors_are_one_line(tmp_path):
    proc = bilge("analyze", f"docker-daemon:{TAG_PREFIX}:absent")
    assert proc.returncode == 2 and "no such image in the Docker engine" in proc.stderr, proc.stderr
    proc = bilge("analyze", f"docker-daemon:{TAG_PREFIX}:x", env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert proc.returncode == 2 and "no Docker engine answers" in proc.stderr, proc.stderr
    sock = tmp_path / "locked.sock"
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.listen(1)
    try:
        os.chmod(sock, 0)
        env = {"DOCKER_HOST": f"unix://{sock}"}
        if os.geteuid() == 0:  # root ignores the mode: run the check as nobody
            code = ("import sys; sys.argv=['bilge','analyze','docker-daemon:x:y']; import os; os.setgid(65534); "
                    "os.setuid(65534); from bilge.cli import main; main()")
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                  env={**os.environ, **env})
        else:
            proc = bilge("analyze", "docker-daemon:x:y", env=env)
        assert proc.returncode == 2 and "permission denied" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        s.close()


def test_write_to_the_engine(base_image, tmp_path):
    tag = f"{TAG_PREFIX}:squashed"
    try:
        proc = bilge("squash", f"docker-daemon:{base_image}", "-o", f"docker-daemon:{tag}")
        assert proc.returncode == 0, proc.stderr
        image_id = run([DOCKER, "image", "inspect", "--format", "{{.Id}}", tag]).strip()
        assert f"image   {image_id}" in proc.stdout
        out = run([DOCKER, "run", "--rm", tag, "cat", "/etc/debian_version"]).strip()
        assert out.startswith("12")
    finally:
        docker_rmi(tag)
