"""`bilge analyze` as a user runs it: the demo, exit codes, one-line errors, masking, JSON schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bilge.testing import docker_archive


def run(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_demo_runs_and_masks_the_build_arg_token():
    proc = run("analyze")
    assert proc.returncode == 0, proc.stderr
    assert "Dead weight: 1.5 MB" in proc.stdout and "31.9% of the layers" in proc.stdout
    out = json.loads(run("analyze", "--demo", "--format", "json").stdout)
    text = json.dumps(out, ensure_ascii=False)
    import re

    assert re.search(r"GITHUB_ACCESS_TOKEN=ghp_\w{0,6}\u2026\(40 chars\)", text)

    assert not re.search(r"ghp_[A-Za-z0-9]{36}", text + proc.stdout)
    s = out["summary"]
    assert s["reclaimable_bytes"] == s["layer_bytes"] - s["visible_bytes"] > 0
    # the story: a build tool installed in one RUN and removed in a later one is dead weight
    assert any(g["path"].startswith("/usr/bin/make") for g in out["wasted"])


def test_json_schema_fields(tmp_path):
    path = tmp_path / "img.tar"
    docker_archive(path, [[("file", "a", b"x" * 10)], [("whiteout", "a")]])
    out = json.loads(run("analyze", "-f", "json", str(path)).stdout)
    assert out["schema"] == "bilge.analyze/1"
    assert set(out["image"]) >= {"reference", "digest", "platform", "layers"}
    assert set(out["summary"]) >= {"compressed_bytes", "layer_bytes", "visible_bytes", "reclaimable_bytes"}
    assert set(out["dive"]) >= {"efficiency", "wasted_bytes", "user_size_bytes", "user_wasted_percent"}
    assert set(out["layers"][0]) >= {"index", "digest", "diff_id", "created_by", "compressed_bytes", "layer_bytes",
                                     "reclaimable_bytes"}
    assert out["wasted"] == [{"path": "/a", "bytes": 10, "files": 1, "layer": 0, "hidden_by_layer": 1,
                              "how": "deleted", "created_by": "/bin/sh -c step 0",
                              "hidden_by_created_by": "/bin/sh -c step 1", "fix": out["wasted"][0]["fix"]}]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    cases = [
        ("analyze", str(tmp_path / "missing.tar")),
        ("analyze", "--platform", "linux", str(tmp_path)),
        ("analyze", str(tmp_path)),  # an empty directory is not an OCI layout
        ("analyze", "docker://registry.invalid/app:1"),
    ]
    for args in cases:
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout == ""


def test_base_marks_shared_layers(tmp_path):
    base = tmp_path / "base.tar"
    app = tmp_path / "app.tar"
    docker_archive(base, [[("file", "etc/os", b"debian")], [("file", "usr/lib/x", b"12")]])
    docker_archive(app, [[("file", "etc/os", b"debian")], [("file", "usr/lib/x", b"12")], [("file", "app", b"1")]])
    out = json.loads(run("analyze", "-f", "json", "--base", str(base), str(app)).stdout)
    assert [x["base"] for x in out["layers"]] == [True, True, False]
    assert out["summary"]["base_layers"] == 2


def test_every_command_has_working_help():
    from bilge.cli import app

    names = [c.name for c in app.registered_commands]
    assert "analyze" in names
    for name in [None, *names]:
        proc = run(*([name] if name else []), "--help")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (name, proc.stderr)
        assert "Usage" in proc.stdout


def test_an_error_is_one_bounded_line(capsys):
    """Issue 16 (17): an error listing a million manifest entries was a 20 MB line."""
    from bilge.cli import MAX_ERROR_CHARS, error_line

    error_line("no image matches; the archive holds: " + ", ".join(f"img{i}:latest" for i in range(100_000))
               + "\nsecond line")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bilge: error: no image matches")
    assert len(err) <= MAX_ERROR_CHARS + len("bilge: error: \n")
    assert err.rstrip().endswith("characters)")
