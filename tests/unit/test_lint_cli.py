"""`bilge lint` as a user runs it: exit codes, one-line errors, config, pragmas, JSON, SARIF, --output, --image."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bilge.testing import config_for, docker_archive, layer_tar

DOCKERFILE = "FROM debian\nARG NPM_TOKEN\nRUN apt-get update && apt-get install -y curl\nRUN rm -rf /var/lib/apt/lists/*\n"


def run(*args, cwd=None, stdin=None):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "bilge", "lint", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120, input=stdin)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / ".dockerignore").write_text(".git\n")
    return tmp_path


def test_findings_exit_1_clean_exit_0(project):
    proc = run("Dockerfile", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert "secret-arg" in proc.stdout and "cleanup-later-layer" in proc.stdout
    assert "\x1b[" not in proc.stdout  # no colour when piped
    (project / "Clean.Dockerfile").write_text("FROM debian:bookworm-slim\nCOPY app /app\nCMD [\"/app\"]\n")
    proc = run("Clean.Dockerfile", cwd=project)
    assert proc.returncode == 0 and "no findings" in proc.stdout and proc.stderr == ""


def test_default_dockerfile_and_stdin(project):
    assert run(cwd=project).returncode == 1
    proc = run("-", "-f", "json", cwd=project, stdin=DOCKERFILE)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["dockerfile"] == "-"


def test_parse_error_exit_2_with_line(project):
    (project / "Bad").write_text("FROM a\nRUN x\nFROOM b\n")
    proc = run("Bad", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "bilge: error: Bad:3: unknown instruction: FROOM"
    assert proc.stdout == ""
    proc = run("missing", cwd=project)
    assert proc.returncode == 2 and proc.stderr.startswith("bilge: error: Dockerfile not found")


def test_fail_on_threshold(project):
    assert run("--fail-on", "high", cwd=project).returncode == 1  # secret-arg is high
    assert run("--fail-on", "critical", cwd=project).returncode == 0
    assert run("--fail-on", "never", cwd=project).returncode == 0
    proc = run("--fail-on", "loud", cwd=project)
    assert proc.returncode == 2 and "invalid severity" in proc.stderr


def test_disable_and_unknown_rule(project):
    proc = run("-d", "secret-arg", "-d", "cleanup-later-layer", "-d", "cache-not-cleaned", "-f", "json", cwd=project)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["findings"] == []
    proc = run("--disable", "no-such-rule", cwd=project)
    assert proc.returncode == 2 and "unknown rule 'no-such-rule'" in proc.stderr


def test_config_file(project):
    (project / ".bilge.toml").write_text(
        '[tool.bilge.lint]\ndisable = ["secret-arg"]\nfail-on = "high"\n[tool.bilge.lint.severity]\n'
        'cleanup-later-layer = "critical"\n')
    proc = run("-f", "json", cwd=project)
    out = json.loads(proc.stdout)
    # the apt lists: cache-not-cleaned where they are left (low), cleanup-later-layer where removed (issue 12)
    assert [(f["rule"], f["severity"]) for f in out["findings"]] == [("cache-not-cleaned", "low"),
                                                                      ("cleanup-later-layer", "critical")]
    assert out["fail_on"] == "high" and proc.returncode == 1
    (project / ".bilge.toml").write_text('[tool.bilge.lint]\ndisabel = ["x"]\n')
    proc = run(cwd=project)
    assert proc.returncode == 2 and "unknown setting(s) disabel" in proc.stderr


def test_pyproject_config(project):
    (project / "pyproject.toml").write_text('[tool.bilge.lint]\nfail-on = "never"\n')
    assert run(cwd=project).returncode == 0


def test_pragmas(project):
    (project / "Dockerfile").write_text("FROM debian\n# bilge: ignore=secret-arg\nARG NPM_TOKEN\nRUN true\n")
    assert run(cwd=project).returncode == 0


def test_json_schema(project):
    out = json.loads(run("-f", "json", cwd=project).stdout)
    assert out["schema"] == "bilge.lint/1"
    assert out["target"] == "#0" and out["stages"][0]["shipped"] is True
    assert out["dockerignore"].endswith(".dockerignore") and out["image"] is None
    f = out["findings"][0]
    assert set(f) >= {"rule", "severity", "line", "message", "bytes", "fix", "stage", "instruction", "end_line"}
    assert f["bytes"] is None
    assert out["summary"]["findings"] == len(out["findings"]) and out["summary"]["failed"] is True


def test_sarif(project):
    log = json.loads(run("-f", "sarif", cwd=project).stdout)
    assert log["version"] == "2.1.0" and "sarif" in log["$schema"]
    drv = log["runs"][0]["tool"]["driver"]
    ids = [r["id"] for r in drv["rules"]]
    assert "secret-arg" in ids and "broad-copy-from" in ids
    res = log["runs"][0]["results"]
    assert {r["ruleId"] for r in res} == {"secret-arg", "cleanup-later-layer", "cache-not-cleaned"}
    for r in res:
        loc = r["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == "Dockerfile"
        assert loc["region"]["startLine"] >= 1
        assert drv["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
        assert r["partialFingerprints"]["bilge/v1"]
    assert [r["level"] for r in res if r["ruleId"] == "secret-arg"] == ["error"]


def test_output_file_is_written_whole(project):
    proc = run("-f", "json", "-o", "report.json", cwd=project)
    assert proc.returncode == 1 and proc.stdout == ""
    assert json.loads((project / "report.json").read_text())["schema"] == "bilge.lint/1"
    assert [p.name for p in project.iterdir() if p.name.startswith(".report")] == []
    proc = run("-o", "no/such/dir/r.txt", cwd=project)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_bad_target_and_context(project):
    proc = run("--target", "nope", cwd=project)
    assert proc.returncode == 2 and "no stage named 'nope'" in proc.stderr
    proc = run("--context", "nowhere", cwd=project)
    assert proc.returncode == 2 and "not a directory" in proc.stderr


# --- --image on images built in code ----------------------------------------------------------------------------

IMAGE_DOCKERFILE = (
    "FROM base\n"
    "ARG NPM_TOKEN\n"
    "RUN apt-get update && apt-get install -y curl\n"
    "RUN rm -rf /var/lib/apt/lists/* /usr/share/doc\n"
    "COPY --from=build /usr/lib /usr/lib\n"
)


def _image(path, history_style: str):
    token = "npm_" + "Q7x" * 12
    layers = [
        [("file", "usr/share/doc/a/copyright", b"c" * 3000), ("file", "usr/lib/libc.so", b"l" * 500)],
        [("file", "var/lib/apt/lists/deb_Packages", b"p" * 40000), ("file", "usr/bin/curl", b"u" * 7000),
         ("file", "var/lib/dpkg/info/curl.list", b"/.\n/usr\n/usr/bin\n/usr/bin/curl\n")],
        [("whiteout", "var/lib/apt/lists/deb_Packages"), ("whiteout", "usr/share/doc")],
        [("file", "usr/lib/libc.so", b"l" * 500), ("file", "usr/lib/libgcc.so", b"g" * 9000)],
    ]
    if history_style == "buildkit":
        hist = [
            {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
            {"created_by": "ARG NPM_TOKEN", "empty_layer": True},
            {"created_by": f"RUN |1 NPM_TOKEN={token} /bin/sh -c apt-get update && apt-get install -y curl # buildkit"},
            {"created_by": f"RUN |1 NPM_TOKEN={token} /bin/sh -c rm -rf /var/lib/apt/lists/* /usr/share/doc # buildkit"},
            {"created_by": "COPY /usr/lib /usr/lib # buildkit"},
        ]
    else:
        hist = [
            {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
            {"created_by": "/bin/sh -c #(nop)  ARG NPM_TOKEN", "empty_layer": True},
            {"created_by": f"|1 NPM_TOKEN={token} /bin/sh -c apt-get update && apt-get install -y curl"},
            {"created_by": f"|1 NPM_TOKEN={token} /bin/sh -c rm -rf /var/lib/apt/lists/* /usr/share/doc"},
            {"created_by": "/bin/sh -c #(nop) COPY dir:0773b4fd in /usr/lib "},
        ]
    cfg = config_for([layer_tar(x) for x in layers], raw_history=hist)
    docker_archive(path, layers, config=cfg)
    return token


@pytest.mark.parametrize("style", ["buildkit", "legacy"])
def test_image_bytes_attached_and_sorted(tmp_path, style):
    (tmp_path / "Dockerfile").write_text(IMAGE_DOCKERFILE)
    token = _image(tmp_path / "img.tar", style)
    proc = run("-f", "json", "--image", str(tmp_path / "img.tar"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert token not in proc.stdout
    out = json.loads(proc.stdout)
    img = out["image"]
    assert img["aligned"]["3"]["layer"] == 1 and img["aligned"]["4"]["layer"] == 2 and img["aligned"]["5"]["layer"] == 3
    assert img["base_layers"] == 1
    by = {(f["line"], f["rule"]): f for f in out["findings"]}
    # line 4 hides the 40000-byte lists written by line 3 and the 3000-byte doc of the base layer
    cleanup = by[(4, "cleanup-later-layer")]
    assert cleanup["bytes"] == 43000
    assert "frees 0 bytes: 40.0 kB were committed by line 3, 3.0 kB were committed by the base image" in cleanup["message"]
    # line 5 wrote 9500 bytes, 500 of them over a file the base already had
    broad = by[(5, "broad-copy-from")]
    assert broad["bytes"] == 9500 and broad["details"]["duplicate_bytes"] == 500
    assert "bilge deps" in broad["message"]
    secret = by[(2, "secret-arg")]
    assert secret["bytes"] is None and "NPM_TOKEN=npm_…(40 chars)" in secret["message"]
    sized = [f["bytes"] for f in out["findings"] if f["bytes"] is not None]
    assert sized == sorted(sized, reverse=True)
    assert out["findings"][-1]["bytes"] is None


def test_image_not_built_from_this_dockerfile(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM x\nRUN apt-get update\nRUN apt-get install -y gcc\n")
    docker_archive(tmp_path / "img.tar", [[("file", "a", b"1")]], history=["/bin/sh -c echo other"])
    proc = run("-f", "json", "--image", str(tmp_path / "img.tar"), cwd=tmp_path)
    out = json.loads(proc.stdout)
    assert out["image"]["notes"] and all(f["bytes"] is None for f in out["findings"])
    proc = run("--image", str(tmp_path / "nothing.tar"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("bilge: error:")


def test_help():
    proc = run("--help")
    assert proc.returncode == 0 and "--image" in proc.stdout and "--fail-on" in proc.stdout
