"""The `bilge squash` command line: exit codes, JSON report, no partial output, SOURCE_DATE_EPOCH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bilge.sink import Member

sys.path.insert(0, str(Path(__file__).parent))
from rewrite_helpers import build_image  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def bilge(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    e.update({"PYTHONPATH": str(SRC), "NO_COLOR": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=e)


def image(tmp_path: Path) -> str:
    return build_image(tmp_path / "in.tar", [
        [(Member("app", "dir", 0o755), None), (Member("app/big", size=4000), b"b" * 4000),
         (Member("app/keep", size=4), b"keep")],
        [(Member("app/.wh.big"), None), (Member("app/new", size=3), b"new")],
    ])


def test_squash_json_report(tmp_path):
    ref = image(tmp_path)
    proc = bilge("squash", ref, "-o", f"docker-archive:{tmp_path / 'out.tar'}:app:1", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "bilge.squash/1"
    assert doc["bytes_saved"] == 4000
    assert doc["layers_in"] == 2 and doc["layers_out"] == 1
    assert doc["entries"]["files"] == 2
    assert proc.stderr == ""
    assert (tmp_path / "out.tar").is_file()


def test_squash_text_report_is_plain_when_piped(tmp_path):
    ref = image(tmp_path)
    proc = bilge("squash", ref, "-o", f"oci:{tmp_path / 'o'}")
    assert proc.returncode == 0, proc.stderr
    assert "squashed layers 0-1" in proc.stdout
    assert "dropped 4.0 kB of hidden files" in proc.stdout
    assert "\x1b[" not in proc.stdout
    quiet = bilge("squash", ref, "-o", f"oci:{tmp_path / 'q'}", "-q")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path):
    ref = image(tmp_path)
    cases = [
        ("squash", ref, "-o", "nowhere.tar"),
        ("squash", ref, "-o", f"oci:{tmp_path / 'x'}", "--from-layer", "5"),
        ("squash", str(tmp_path / "missing.tar"), "-o", f"oci:{tmp_path / 'x'}"),
        ("squash", ref, "-o", f"oci:{tmp_path / 'x'}", "--compression", "gzip", "--level", "15"),
        ("squash", ref, "-o", f"oci:{tmp_path / 'x'}", "--base", ref),
    ]
    for args in cases:
        proc = bilge(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("bilge: error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tar"]


def test_source_date_epoch_and_zstd(tmp_path):
    ref = image(tmp_path)
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    a = bilge("squash", ref, "-o", f"oci-archive:{tmp_path / 'a.tar'}", "--compression", "zstd", "-f", "json", env=env)
    b = bilge("squash", ref, "-o", f"oci-archive:{tmp_path / 'b.tar'}", "--compression", "zstd", "-f", "json", env=env)
    assert a.returncode == 0, a.stderr
    assert json.loads(a.stdout)["manifest_digest"] == json.loads(b.stdout)["manifest_digest"]
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    bad = bilge("squash", ref, "-o", f"oci:{tmp_path / 'c'}", env={"SOURCE_DATE_EPOCH": "soon"})
    assert bad.returncode == 2 and "SOURCE_DATE_EPOCH" in bad.stderr


def test_docker_archive_zstd_warns(tmp_path):
    ref = image(tmp_path)
    proc = bilge("squash", ref, "-o", f"docker-archive:{tmp_path / 'z.tar'}", "--compression", "zstd", "-q")
    assert proc.returncode == 0
    assert "warning" in proc.stderr and "zstd" in proc.stderr


def test_slim_dry_run_and_usage_errors(tmp_path):
    ref = build_image(tmp_path / "in.tar", [
        [(Member("etc", "dir"), None), (Member("etc/passwd", size=5), b"root\n"),
         (Member("opt", "dir"), None), (Member("opt/app", size=3), b"app"), (Member("opt/junk", size=900), b"j" * 900)],
    ])
    p = bilge("slim", ref, "--keep", "/opt/app", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "would keep 2 of 3 files" in p.stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.tar"]
    p = bilge("slim", ref, "--keep", "/opt/app", "--dry-run", "-f", "json")
    doc = json.loads(p.stdout)
    assert doc["schema"] == "bilge.slim/1" and doc["dry_run"] is True and doc["kept_bytes"] == 8
    assert "/opt/app" in doc["kept"] and "/etc/passwd" in doc["kept"]
    for args in (("slim", ref, "--keep", "/opt/app"), ("slim", ref, "--keep", "/nope", "-o", f"oci:{tmp_path / 'x'}"),
                 ("slim", ref, "-o", f"oci:{tmp_path / 'x'}")):
        p = bilge(*args)
        assert p.returncode == 2 and p.stderr.startswith("bilge: error: "), (args, p.stderr)
    p = bilge("slim", ref, "--keep", "/opt/app", "-o", f"oci-archive:{tmp_path / 'o.tar'}")
    assert p.returncode == 0 and (tmp_path / "o.tar").is_file()


def test_scrub_without_findings_copies_the_layers(tmp_path):
    ref = image(tmp_path)
    p = bilge("scrub", ref, "-o", f"oci:{tmp_path / 'o'}", "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == "bilge.scrub/1" and doc["findings"] == [] and doc["squashed_from"] is None


def _big_image(tmp_path: Path) -> str:
    """~48 MB of incompressible bodies: long enough to squash that a signal lands mid-write."""
    rnd = os.urandom(1 << 20)
    layers = [[(Member(f"d{i}/f{j}", size=len(rnd)), rnd[j:] + rnd[:j]) for j in range(8)] for i in range(6)]
    return build_image(tmp_path / "big.tar", layers)



@pytest.mark.parametrize("sig", ["TERM", "INT", "HUP"])
def test_a_signal_mid_squash_leaves_nothing_behind(tmp_path, sig):
    """Issue 16 (16): SIGTERM left the staging directory beside the output (SIGINT cleaned up)."""
    import signal
    import time

    ref = _big_image(tmp_path)
    outdir, tmpdir = tmp_path / "out", tmp_path / "tmp"
    outdir.mkdir()
    tmpdir.mkdir()
    e = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    e.update({"PYTHONPATH": str(SRC), "NO_COLOR": "1", "TMPDIR": str(tmpdir)})
    proc = subprocess.Popen([sys.executable, "-m", "bilge", "squash", ref, "-o", f"oci-archive:{outdir / 'o.tar'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    deadline = time.monotonic() + 60
    while not any(outdir.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "squash finished before the signal could be sent"
    proc.send_signal(getattr(signal, f"SIG{sig}"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, f"SIG{sig}"), err
    assert "Traceback" not in err
    assert list(outdir.iterdir()) == [] and list(tmpdir.iterdir()) == []
