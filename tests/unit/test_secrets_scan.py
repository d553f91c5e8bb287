"""The file scan over real image archives built in code: deleted/overwritten versions, chunking,
text vs binary, library paths, credential files, exclusions, and the real fixtures."""

from __future__ import annotations

import gzip
import random
import string

import pytest

from bilge.fs import walk_image
from bilge.secrets import scan_source, scanner
from bilge.secrets.model import ScanStats
from bilge.secrets.precision import github_token
from bilge.secrets.rules import load_ruleset
from bilge.secrets.scanner import FileVisitor, file_findings
from bilge.secrets.textscan import Scanner
from bilge.secrets.tokens import npm_token
from bilge.source import open_image
from bilge.testing import docker_archive, oci_layout
from tests.conftest import require_shared_fixtures

RNG = random.Random(4242)


def tok(prefix: str = "ghp_", n: int = 36) -> str:
    if prefix in ("ghp_", "gho_", "ghu_", "ghs_") and n == 36:  # GitHub's format carries a checksum
        return github_token(prefix, "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(30)))
    if prefix == "npm_" and n == 36:  # so does npm's
        return npm_token("".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(30)))
    return prefix + "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(n))


def pem() -> str:
    b64 = string.ascii_letters + string.digits + "+/"
    body = "\n".join("".join(RNG.choice(b64) for _ in range(64)) for _ in range(20))
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"


def scan_path(path, **kw):
    with open_image(str(path)) as src:
        return scan_source(src, **kw)


def test_key_added_then_removed_is_found_deleted(tmp_path):
    key = pem()
    path = tmp_path / "img.tar"
    docker_archive(path, [
        [("dir", "root"), ("file", "root/app.txt", b"hello\n")],
        [("dir", "root/.ssh"), ("file", "root/.ssh/id_ed25519", key.encode(), 0o600)],
        [("whiteout", "root/.ssh/id_ed25519")],
    ], history=["/bin/sh -c #(nop) ADD file:x in /", "/bin/sh -c cp key /root/.ssh/", "/bin/sh -c rm /root/.ssh/id_ed25519"])
    findings, stats = scan_path(path)
    [f] = findings
    assert (f.rule, f.severity) == ("private-key", "critical")
    assert (f.location.kind, f.location.layer, f.location.path, f.location.line) == ("file", 1, "root/.ssh/id_ed25519", 1)
    assert f.deleted and f.hidden_by == 2 and f.hidden_how == "deleted"
    assert f.location.layer_digest.startswith("sha256:")
    assert "still ships" in f.fix
    assert stats.scanned.files == 2 and stats.layers == 3


def test_overwritten_and_visible_versions(tmp_path):
    t1, t2 = tok(), tok()
    path = tmp_path / "img.tar"
    docker_archive(path, [
        [("dir", "app"), ("file", "app/.env", f"# app\nGITHUB_TOKEN={t1}\n".encode())],
        [("file", "app/.env", f"# app\nGITHUB_TOKEN={t2}\n".encode())],
    ])
    findings, _ = scan_path(path)
    got = sorted((f.location.layer, f.secret, f.deleted, f.hidden_how, f.location.line) for f in findings)
    assert got == [(0, t1, True, "overwritten", 2), (1, t2, False, None, 2)]
    # same path and rule but different values: different fingerprints; same value in two layers: same one
    assert findings[0].fingerprint != findings[1].fingerprint


def test_secret_across_chunk_boundaries_and_line_numbers(tmp_path):
    # small windows force the chunked path; secrets sit on and around window edges
    secrets_at = {}
    lines = []
    for i in range(3000):
        if i in (100, 511, 512, 1999, 2999):
            t = tok()
            secrets_at[t] = i + 1
            lines.append(f"token = {t}")
        else:
            lines.append(f"line {i} " + "x" * (i % 17))
    content = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "img.tar"
    docker_archive(path, [[("dir", "app"), ("file", "app/big.conf", content)]])
    ruleset = load_ruleset()
    for chunk, overlap in ((4096, 1024), (1 << 20, 64 << 10), (333, 128)):
        stats = ScanStats()
        visitor = FileVisitor(Scanner(ruleset), stats, chunk=chunk, overlap=overlap)
        with open_image(str(path)) as src:
            fs = walk_image(src, visitors=[visitor])
        found = {f.secret: f.location.line for f in file_findings(visitor.hits, fs.version_at)}
        assert found == secrets_at, chunk
        assert stats.scanned.bytes == len(content)


def test_binaries_and_archives_are_counted_not_scanned_unless_asked(tmp_path):
    t = tok()
    elf = b"\x7fELF\x02\x01\x01" + b"\0" * 100 + f"token={t}".encode() + b"\0" * 50
    gz = gzip.compress(f"GITHUB_TOKEN={t}\n".encode())
    path = tmp_path / "img.tar"
    docker_archive(path, [[("dir", "usr/local/bin"), ("file", "usr/local/bin/app", elf, 0o755),
                           ("file", "backup.env.gz", gz), ("file", "notes.txt", b"nothing here\n")]])
    findings, stats = scan_path(path)
    assert findings == []
    assert (stats.binary.files, stats.binary.bytes) == (1, len(elf))
    assert (stats.archives.files, stats.archives.bytes) == (1, len(gz))
    assert (stats.scanned.files, stats.scanned.bytes) == (1, len(b"nothing here\n"))
    findings, _ = scan_path(path, scan_binaries=True)
    assert [(f.location.path, f.secret) for f in findings] == [("usr/local/bin/app", t)]


def test_library_paths_downgrade_fixtures_but_not_provider_tokens(tmp_path):
    t = tok()
    path = tmp_path / "img.tar"
    docker_archive(path, [[
        ("file", "usr/lib/python3/dist-packages/paramiko/tests/test_rsa.key", pem().encode()),
        ("file", "usr/lib/python3/dist-packages/app/settings.py", f'password = "Zx9!kLm2pQ7r"\nTOKEN = "{t}"\n'.encode()),
        ("file", "app/settings.py", b'password = "Zx9!kLm2pQ7r"\n'),
    ]])
    findings, _ = scan_path(path)
    got = sorted((f.location.path, f.rule, f.severity) for f in findings)
    assert got == [
        ("app/settings.py", "secret-assignment", "high"),  # a quoted, random-looking literal in app code
        ("usr/lib/python3/dist-packages/app/settings.py", "github-pat", "critical"),
        ("usr/lib/python3/dist-packages/paramiko/tests/test_rsa.key", "private-key", "low"),
    ]


def test_credential_file_and_text_rule_on_same_value_are_one_finding(tmp_path):
    t = tok("npm_")
    path = tmp_path / "img.tar"
    docker_archive(path, [[("file", "root/.npmrc", f"//registry.npmjs.org/:_authToken={t}\n".encode()),
                           ("file", "root/.netrc", b"machine files.internal login deploy password k3Jd93kd0Qm1\n")]])
    findings, stats = scan_path(path)
    assert sorted((f.location.path, f.rule) for f in findings) == [("root/.netrc", "netrc"), ("root/.npmrc", "npm-token")]
    assert stats.credential_files == 2


def test_hardlinked_secret_reported_once(tmp_path):
    path = tmp_path / "img.tar"
    docker_archive(path, [[("dir", "app"), ("file", "app/.env", f"API_KEY={tok()}\n".encode()),
                           ("hardlink", "app/.env.bak", "app/.env")]])
    findings, _ = scan_path(path)
    assert [f.location.path for f in findings] == ["app/.env"]


def test_excluded_paths_are_counted(tmp_path):
    path = tmp_path / "img.tar"
    docker_archive(path, [[("dir", "srv/fixtures"), ("file", "srv/fixtures/key.pem", pem().encode()),
                           ("file", "srv/app.conf", b"ok\n")]])
    ruleset = load_ruleset({"exclude_paths": ["srv/fixtures/**"]})
    findings, stats = scan_path(path, ruleset=ruleset)
    assert findings == [] and stats.excluded.files == 1 and stats.scanned.files == 1


def test_opaque_directory_hides_earlier_secret(tmp_path):
    path = tmp_path / "img.tar"
    docker_archive(path, [[("dir", "build"), ("file", "build/.git-credentials", f"https://x:{tok('')}@github.com\n".encode())],
                          [("opaque", "build"), ("file", "build/out.txt", b"done\n")]])
    [f] = scan_path(path)[0]
    assert f.rule == "git-credentials" and f.deleted and f.hidden_how == "opaque" and f.hidden_by == 1


def test_oci_layout_zstd_and_gzip_layers(tmp_path):
    path = tmp_path / "img.oci.tar"
    t = tok()
    oci_layout(path, [{"layers": [[("file", "a.env", f"TOKEN={t}\n".encode())], [("whiteout", "a.env")]],
                       "compression": "zstd"}])
    [f] = scan_path(f"oci-archive:{path}")[0]
    assert f.secret == t and f.deleted


def test_config_and_files_in_one_pass(tmp_path, monkeypatch):
    # one read of the layers serves the scan: walk_image is called exactly once
    import bilge.fs

    calls = []
    real = bilge.fs.walk_image
    monkeypatch.setattr(bilge.fs, "walk_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = tmp_path / "img.tar"
    docker_archive(path, [[("file", "x.env", b"DB_PASSWORD=hunter2x\n")]],
                   history=["|1 DEPLOY_TOKEN=Zk2m9QpL0xV7nB4c /bin/sh -c make"])
    findings, _ = scan_path(path)
    assert calls == [1]
    assert sorted(f.location.kind for f in findings) == ["file", "history"]


# --- real fixtures: nothing high where there is no secret --------------------------------------

CLEAN = ["cimage-almostempty.tar", "dive-test-docker-image.tar", "dive-test-kaniko-image.tar",
         "dive-test-oci-estargz-image.tar", "dive-test-oci-gzip-image.tar", "dive-test-oci-uncompressed-image.tar",
         "dive-test-oci-zstd-image.tar", "dockle-scratch.tar", "dockle-symbolic.tar", "ggcr-hello-world-v25.tar",
         "ggcr-overwritten_file.tar", "ggcr-test_bundle.tar:@1", "ggcr-test_image_1.tar",
         "ggcr-test_link.tar:@0", "ggcr-whiteout_dir.tar", "ggcr-whiteout_image.tar", "jib-docker-save.tar",
         "jib-jib-image.tar", "oras-hello-world-prefixed-path.tar", "oras-hello-world.tar", "scalibr-basic.tar",
         "scalibr-multiple-files.tar", "scalibr-overwrite-file.tar", "scalibr-single-file.tar",
         "scalibr-symlink-attack.tar", "scalibr-symlink-basic.tar", "scalibr-symlink-cycle.tar",
         "scalibr-symlink-dangling.tar", "scalibr-symlink-depth-exceeded.tar", "scalibr-two-files.tar",
         "scalibr-unpack-permissions.tar", "scalibr-unpack-symlinks.tar", "stereoscope-multiplatform_oci_dir.oci.tar",
         "stereoscope-valid-oci.tar", "stereoscope-valid_oci_dir.oci.tar", "trivy-test.oci.tar", "trivy-alpine-311.tar.gz"]


@pytest.mark.parametrize("name", CLEAN)
def test_real_fixtures_have_no_high_findings(name):
    file, _, sel = name.partition(":")
    path = require_shared_fixtures("images", file)
    findings, stats = scan_path(f"{path}:{sel}" if sel else path)
    assert [f for f in findings if f.rank >= 3] == []
    assert stats.layers >= 0


def test_dockle_credentials_json_is_a_dockerfile_not_a_credential():
    # dockle flags /credentials.json by its name; its content is a Dockerfile with `ENV MYSQL_PASSWD password`
    # (a placeholder). bilge reads it as text and reports nothing.
    path = require_shared_fixtures("images", "dockle-scratch.tar")
    findings, stats = scan_path(path)
    assert findings == [] and stats.scanned.files == 1 and stats.scanned.bytes == 461


def test_identical_contents_scanned_once_reported_everywhere(tmp_path, monkeypatch):
    t = tok()
    body = f"# settings\nAPI_TOKEN={t}\n".encode()
    path = tmp_path / "img.tar"
    docker_archive(path, [[("dir", "a"), ("file", "a/.env", body)],
                          [("file", "a/.env", body, 0o600)],  # chmod in a later layer rewrites the file
                          [("dir", "b"), ("file", "b/.env", body)],
                          [("dir", "c"), ("file", "c/.env", body)]])
    calls = []
    real = Scanner.scan
    monkeypatch.setattr(Scanner, "scan", lambda self, buf, ctx, *a, **k: calls.append(ctx) or real(self, buf, ctx, *a, **k))
    findings, stats = scan_path(path)
    got = sorted((f.location.layer, f.location.path, f.location.line, f.deleted, f.hidden_how, f.also_at)
                 for f in findings)
    # one finding per value and state: the copies are listed with it, not reported again (issue 12)
    assert got == [(0, "a/.env", 2, True, "overwritten", ()),
                   (1, "a/.env", 2, False, None, ("/b/.env:2", "/c/.env:2"))]
    # the first copy is scanned and kept; every later one is recognised by its bytes and reuses the result
    assert stats.scanned.files == 4 and calls.count("config") == 1
    # past the memory budget for kept bodies: the second copy is hashed and scanned, later ones reuse it
    monkeypatch.setattr(scanner, "KEEP_BYTES", 0)
    calls.clear()
    findings_hashed, stats = scan_path(path)
    assert findings_hashed == findings and stats.scanned.files == 4 and calls.count("config") == 2


@pytest.mark.parametrize("keep", [0, 16 << 20])
def test_same_size_head_and_tail_but_other_content_is_scanned(tmp_path, monkeypatch, keep):
    """The signature (size, first and last 64 bytes) only decides whether to compare: a body that
    differs in the middle is scanned, whether kept bodies are compared byte for byte or hashed."""
    monkeypatch.setattr(scanner, "KEEP_BYTES", keep)
    t = tok()
    head, tail = b"# settings\n" + b"#" * 80 + b"\n", b"\n" + b"#" * 80 + b"\n"
    plain = head + b"NOTHING=" + b"x" * (len(t) + 2) + b"\n" + tail
    secret = head + f"API_TOKEN={t}\n".encode() + tail
    assert len(plain) == len(secret)
    path = tmp_path / "img.tar"
    docker_archive(path, [[("dir", "a"), ("file", "a/.env", plain), ("file", "b/.env", plain),
                           ("file", "c/.env", secret)]])
    findings, stats = scan_path(path)
    assert [(f.location.path, f.secret) for f in findings] == [("c/.env", t)]
    assert stats.scanned.files == 3


def test_scripts_are_code_or_config_by_their_interpreter(tmp_path):
    path = tmp_path / "img.tar"
    docker_archive(path, [[("dir", "usr/local/bin"),
                           ("file", "usr/local/bin/tool", b"#!/usr/bin/perl\nmy $pass = 'cpan';\nmy %o = (pass => external);\n"
                            b'my $password = "Xk29dL0qPz93mXnB7";\n', 0o755),
                           ("file", "usr/local/bin/deploy", b"#!/bin/sh\nexport DB_PASSWORD=hunter22\n", 0o755)]])
    got = sorted((f.location.path, f.secret, f.severity) for f in scan_path(path)[0])
    assert got == [("usr/local/bin/deploy", "hunter22", "medium"), ("usr/local/bin/tool", "Xk29dL0qPz93mXnB7", "high")]
