"""bilge scrub: secrets gone from config, history and layer bytes; the rest of the image intact."""

from __future__ import annotations

import gzip
import json
import secrets
import string
import sys
import tarfile
from pathlib import Path

import pytest

from bilge.rewrite import REDACTED, scrub
from bilge.secrets import scan_source
from bilge.sink import Member, NewLayer, write_image
from bilge.source import open_image

sys.path.insert(0, str(Path(__file__).parent))
from rewrite_helpers import visible_tree  # noqa: E402

from bilge.secrets.precision import github_token


def fresh_token() -> str:
    return github_token("ghp_", "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(30)))


def make(tmp_path: Path, tok: str, tok2: str, *, visible_secret: bool = True) -> str:
    cfg = {
        "architecture": "amd64", "os": "linux", "created": "2024-05-06T07:08:09Z",
        "config": {"Env": ["PATH=/bin", f"GITHUB_TOKEN={tok2}"], "Cmd": ["sh"], "Labels": {"team": "x"},
                   "WorkingDir": "/app"},
        "container_config": {"Cmd": ["/bin/sh", "-c", f"#(nop) ARG GITHUB_ACCESS_TOKEN={tok}"]},
        "history": [
            {"created_by": "ADD rootfs"},
            {"created_by": "ARG GITHUB_ACCESS_TOKEN", "empty_layer": True},
            {"created_by": f"|1 GITHUB_ACCESS_TOKEN={tok} /bin/sh -c bundle install"},
            {"created_by": "/bin/sh -c rm -f /root/.netrc"},
        ],
    }
    netrc = f"machine github.com login x password {tok}\n".encode()
    conf = f"token: {tok2}\n".encode() if visible_secret else b"token: from-env\n"
    layers = [
        [(Member("root", "dir", 0o700), None), (Member("etc", "dir"), None), (Member("etc/hostname", size=3), b"box")],
        [(Member("root/.netrc", "file", 0o600, size=len(netrc)), netrc), (Member("app", "dir"), None),
         (Member("app/config.yml", size=len(conf)), conf), (Member("app/main.rb", size=11), b"puts 'hi'\n\n")],
        [(Member("root/.wh..netrc"), None)],
    ]
    ref = f"oci-archive:{tmp_path / 'in.tar'}"
    write_image(ref, cfg, [NewLayer(m) for m in layers])
    return ref


def all_bytes(archive: Path) -> bytes:
    """Every byte of an oci-archive, layers decompressed (stdlib gzip, not bilge)."""
    out = [archive.read_bytes()]
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            if m.isfile():
                data = tf.extractfile(m).read()
                if data[:2] == b"\x1f\x8b":
                    out.append(gzip.decompress(data))
    return b"".join(out)


def test_scrub_removes_every_secret_and_keeps_the_rest(tmp_path):
    tok, tok2 = fresh_token(), fresh_token()
    ref = make(tmp_path, tok, tok2)
    with open_image(ref) as src:
        before, _ = scan_source(src)
    assert {f.location.where() for f in before} >= {"history:GITHUB_ACCESS_TOKEN", "env:GITHUB_TOKEN",
                                                   "file:root/.netrc", "file:app/config.yml"}
    out = tmp_path / "out.tar"
    with open_image(ref) as src:
        res = scrub(src, f"oci-archive:{out}", remove_files=True)
    with open_image(f"oci-archive:{out}") as src:
        after, _ = scan_source(src)
        image = src.image
    assert after == []
    # independently of the scanner: neither token's bytes are anywhere in the archive or its layers
    blob = all_bytes(out)
    assert tok.encode() not in blob and tok2.encode() not in blob
    # the instruction stays readable, the value is gone; Env lost the variable; the rest is kept
    hist = image.config["history"]
    assert hist[2]["created_by"] == f"|1 GITHUB_ACCESS_TOKEN={REDACTED} /bin/sh -c bundle install"
    assert image.container_config["Env"] == ["PATH=/bin"]
    assert image.container_config["Labels"] == {"team": "x"} and image.container_config["WorkingDir"] == "/app"
    assert REDACTED in json.dumps(image.config["container_config"])
    assert image.config["created"] == "2024-05-06T07:08:09Z"
    # layer 0 kept byte for byte; layers 1-2 squashed; history aligned
    with open_image(ref) as src:
        assert image.layers[0].digest == src.image.layers[0].digest
    assert len(image.layers) == 2 and [layer.history is not None for layer in image.layers] == [True, True]
    assert res.details["squashed_from"] == 1 and res.details["removed_files"] == ["/app/config.yml"]
    tree = visible_tree(f"oci-archive:{out}")
    assert "app/config.yml" not in tree and "app/main.rb" in tree and "root/.netrc" not in tree


def test_visible_secret_file_stays_without_remove_files(tmp_path):
    tok, tok2 = fresh_token(), fresh_token()
    ref = make(tmp_path, tok, tok2)
    with open_image(ref) as src:
        res = scrub(src, f"oci-archive:{tmp_path / 'o.tar'}")
    assert res.details["remaining"] == ["/app/config.yml"]
    with open_image(f"oci-archive:{tmp_path / 'o.tar'}") as src:
        after, _ = scan_source(src)
    assert [f.location.where() for f in after] == ["file:app/config.yml"]
    assert tok.encode() not in all_bytes(tmp_path / "o.tar")  # the deleted .netrc is gone for real


def test_config_only_secrets_keep_every_layer(tmp_path):
    tok, tok2 = fresh_token(), fresh_token()
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Env": [f"API_TOKEN={tok2}"], "Labels": {"k": tok}},
           "history": [{"created_by": "ADD x"}, {"created_by": f"ENV API_TOKEN={tok2}", "empty_layer": True}]}
    ref = f"oci:{tmp_path / 'in'}"
    write_image(ref, cfg, [NewLayer([(Member("x", size=1), b"x")])])
    with open_image(ref) as src:
        res = scrub(src, f"oci:{tmp_path / 'out'}", env_mode="redact", label_mode="redact")
        digests = [layer.digest for layer in src.image.layers]
    with open_image(f"oci:{tmp_path / 'out'}") as src:
        assert [layer.digest for layer in src.image.layers] == digests
        assert src.image.container_config["Env"] == [f"API_TOKEN={REDACTED}"]
        assert src.image.container_config["Labels"] == {"k": REDACTED}
        assert src.image.config["history"][-1]["empty_layer"] is True
        after, _ = scan_source(src)
    assert after == [] and res.details["squashed_from"] is None


def test_scrub_cli_exit_codes(tmp_path):
    import os
    import subprocess

    tok, tok2 = fresh_token(), fresh_token()
    ref = make(tmp_path, tok, tok2)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "NO_COLOR": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "bilge", *a], capture_output=True, text=True, env=env)  # noqa: E731
    p = run("scrub", ref, "-o", f"oci-archive:{tmp_path / 'a.tar'}")
    assert p.returncode == 1 and "still in /app/config.yml" in p.stderr
    assert tok not in p.stdout + p.stderr and tok2 not in p.stdout + p.stderr  # masked in the report
    p = run("scrub", ref, "-o", f"oci-archive:{tmp_path / 'b.tar'}", "--remove-files", "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == "bilge.scrub/1" and doc["removed_files"] == ["/app/config.yml"]
    assert tok not in p.stdout


@pytest.mark.parametrize("mode", ["remove", "redact"])
def test_scrub_is_reproducible(tmp_path, mode):
    tok, tok2 = fresh_token(), fresh_token()
    ref = make(tmp_path, tok, tok2)
    digests = set()
    for i in range(2):
        with open_image(ref) as src:
            digests.add(scrub(src, f"oci-archive:{tmp_path / f'{i}.tar'}", env_mode=mode).output.manifest_digest)
    assert len(digests) == 1
