"""`bilge secrets` on images built by a real Docker engine, legacy builder and BuildKit.

What bilge reports is checked against what the engine itself says: `docker history --no-trunc`
(build args really are in the history), the layer tars of `docker save` read with tarfile (the
key really is in the layer blob) and `docker run` of the final image (the key really is gone from
the final filesystem). The fake secrets are generated per session with the right shapes.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bilge.secrets.precision import github_token
from bilge.secrets.tokens import npm_token
from tests.integration.conftest import DOCKER, docker_build, docker_rmi, docker_save, ensure_base_image, run

RNG = random.SystemRandom()
BUILDERS = [pytest.param(False, id="legacy"), pytest.param(True, id="buildkit")]


def rnd(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def bilge(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=env, timeout=600)


def scan_json(path: Path, *extra: str) -> tuple[int, dict, str]:
    proc = bilge("secrets", str(path), "--format", "json", "--severity", "low", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stdout + proc.stderr


def history(tag: str) -> list[str]:
    return run([DOCKER, "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag]).splitlines()


def layer_members(archive: Path) -> list[set[str]]:
    """The regular-file paths of each layer, read from `docker save` with tarfile (independent of bilge)."""
    out = []
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for name in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                out.append({m.name.lstrip("./") for m in layer if m.isfile()})
    return out


@pytest.fixture(scope="module")
def base() -> str:
    return ensure_base_image()


@pytest.fixture
def tags():
    made: list[str] = []
    yield made
    docker_rmi(*made)


# ------------------------------------------------------------------------------------------------
# the seed: a token passed as a build arg to `bundle install`

SEED = """\
FROM bilge-base:bookworm AS builder
# a stand-in for bundler: the history records the RUN line whatever the program does
RUN printf '#!/bin/sh\\necho "bundle $*"\\n' > /usr/local/bin/bundle && chmod +x /usr/local/bin/bundle
WORKDIR /app
ARG GITHUB_ACCESS_TOKEN
RUN bundle config --global frozen 1 && \\
    BUNDLE_GITHUB__COM="$GITHUB_ACCESS_TOKEN:x-oauth-basic" bundle install --jobs 4 --without development test && \\
    mkdir -p /usr/local/bundle && echo gems > /usr/local/bundle/installed
RUN echo assets > /app/assets.txt

FROM bilge-base:bookworm
WORKDIR /opt/www/myapp
COPY --from=builder /usr/local/bundle /usr/local/bundle
COPY --from=builder /app /opt/www/myapp
CMD ["cat", "/opt/www/myapp/assets.txt"]
"""


@pytest.mark.parametrize("buildkit", BUILDERS)
def test_build_arg_token_in_builder_history_not_in_final_image(tmp_path, base, tags, buildkit):
    token = github_token("ghp_", rnd(30))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(SEED)
    kind = "buildkit" if buildkit else "legacy"
    builder_tag, final_tag = f"secrets-seed-builder-{kind}:{rnd(8).lower()}", f"secrets-seed-final-{kind}:{rnd(8).lower()}"
    tags += [builder_tag, final_tag]
    docker_build(ctx, builder_tag, buildkit=buildkit, build_args={"GITHUB_ACCESS_TOKEN": token}, target="builder")
    docker_build(ctx, final_tag, buildkit=buildkit, build_args={"GITHUB_ACCESS_TOKEN": token})

    # the engine's own account: the builder's history carries the token, the final image's does not
    assert any(f"GITHUB_ACCESS_TOKEN={token}" in line for line in history(builder_tag))
    assert not any(token in line for line in history(final_tag))

    builder_tar = docker_save(builder_tag, tmp_path / "builder.tar")
    rc, doc, raw = scan_json(builder_tar)
    assert rc == 1
    assert token not in raw  # masked
    hits = [f for f in doc["findings"] if f["rule"] == "github-pat"]
    assert len(hits) == 1, doc["findings"]
    f = hits[0]
    assert f["severity"] == "critical" and f["location"]["kind"] == "history" and f["location"]["key"] == "GITHUB_ACCESS_TOKEN"
    # every RUN after the ARG carries it (legacy writes `|1 ...` on each); bilge lists them all once
    lines = history(builder_tag)[::-1]  # docker lists newest first
    carrying = [i for i, line in enumerate(lines) if token in line]
    assert [f["location"]["history_index"], *f["also_in_history"]] == carrying
    assert "--mount=type=secret" in f["fix"]

    final_tar = docker_save(final_tag, tmp_path / "final.tar")
    rc, doc, raw = scan_json(final_tar, "--show-secrets")
    assert rc == 0 and doc["findings"] == [], doc["findings"]
    assert token not in raw


# ------------------------------------------------------------------------------------------------
# a key file added in one RUN and removed in the next

KEYFILE = """\
FROM bilge-base:bookworm
RUN mkdir -p /root/.ssh && \\
    { echo "-----BEGIN OPENSSH PRIVATE KEY-----"; head -c 1200 /dev/urandom | base64 -w 70; \\
      echo "-----END OPENSSH PRIVATE KEY-----"; } > /root/.ssh/id_ed25519 && chmod 600 /root/.ssh/id_ed25519
RUN echo "pretend we used it" && rm /root/.ssh/id_ed25519
CMD ["ls", "-la", "/root/.ssh"]
"""


@pytest.mark.parametrize("buildkit", BUILDERS)
def test_key_added_in_one_run_and_removed_in_the_next_is_found_deleted(tmp_path, base, tags, buildkit):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(KEYFILE)
    tag = f"secrets-keyfile-{'buildkit' if buildkit else 'legacy'}:{rnd(8).lower()}"
    tags.append(tag)
    docker_build(ctx, tag, buildkit=buildkit)
    archive = docker_save(tag, tmp_path / "img.tar")

    members = layer_members(archive)
    added = [i for i, files in enumerate(members) if "root/.ssh/id_ed25519" in files]
    assert len(added) == 1  # the layer blob that still ships it
    gone = subprocess.run([DOCKER, "run", "--rm", tag, "test", "-e", "/root/.ssh/id_ed25519"], timeout=120)
    assert gone.returncode == 1  # not in the final filesystem

    rc, doc, raw = scan_json(archive)
    assert rc == 1
    keys = [f for f in doc["findings"] if f["rule"] == "private-key"]
    assert len(keys) == 1, doc["findings"]
    k = keys[0]
    assert k["location"]["kind"] == "file" and k["location"]["path"] == "root/.ssh/id_ed25519"
    assert k["location"]["layer"] == added[0] and k["deleted"] is True and k["hidden_by"] == added[0] + 1
    assert k["hidden_how"] == "deleted" and k["location"]["line"] == 1
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
    assert k["location"]["layer_digest"].startswith("sha256:")
    assert len(manifest[0]["Layers"]) == len(members)
    # the key body never appears in the output
    with tarfile.open(archive) as outer:
        layer = tarfile.open(fileobj=outer.extractfile(manifest[0]["Layers"][added[0]]))
        body = layer.extractfile("root/.ssh/id_ed25519").read().decode().splitlines()[2]
    assert body not in raw


# ------------------------------------------------------------------------------------------------
# ENV, LABEL, and config files copied into the image

CONFIGS = """\
FROM bilge-base:bookworm
ENV DB_PASSWORD={password} RAILS_ENV=production
LABEL com.example.deploy-token="{label_token}" org.opencontainers.image.title="demo"
WORKDIR /app
COPY app.env /app/.env
COPY database.yml /app/config/database.yml
COPY npmrc /root/.npmrc
CMD ["true"]
"""


@pytest.mark.parametrize("buildkit", BUILDERS)
def test_env_label_and_config_files(tmp_path, base, tags, buildkit):
    password = "Pw-" + rnd(14)
    label_token = "glpat-" + rnd(20)
    stripe = "sk_live_" + rnd(24)
    db_password = rnd(16)
    npm = npm_token(rnd(30))  # npm's format: a CRC32 checksum in the last six characters
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(CONFIGS.format(password=password, label_token=label_token))
    (ctx / "app.env").write_text(f"RAILS_LOG_TO_STDOUT=1\nSTRIPE_SECRET_KEY={stripe}\n")
    (ctx / "database.yml").write_text(f"production:\n  adapter: postgresql\n  username: app\n  password: {db_password}\n")
    (ctx / "npmrc").write_text(f"//registry.npmjs.org/:_authToken={npm}\n")
    tag = f"secrets-configs-{'buildkit' if buildkit else 'legacy'}:{rnd(8).lower()}"
    tags.append(tag)
    docker_build(ctx, tag, buildkit=buildkit)
    archive = docker_save(tag, tmp_path / "img.tar")
    inspect = json.loads(run([DOCKER, "image", "inspect", tag]))[0]["Config"]
    assert f"DB_PASSWORD={password}" in inspect["Env"] and inspect["Labels"]["com.example.deploy-token"] == label_token

    rc, doc, raw = scan_json(archive)
    assert rc == 1
    for secret in (password, label_token, stripe, db_password, npm):
        assert secret not in raw
    got = {(f["location"]["kind"], f["location"].get("key") or f["location"].get("path"), f["rule"])
           for f in doc["findings"]}
    assert ("env", "DB_PASSWORD", "secret-assignment") in got
    assert ("label", "com.example.deploy-token", "gitlab-pat") in got
    assert ("file", "app/.env", "stripe-secret-key") in got
    assert ("file", "app/config/database.yml", "database-yml-password") in got
    assert ("file", "root/.npmrc", "npm-token") in got
    # the ENV and LABEL instructions that set them are named (folded into one finding each)
    lines = history(tag)[::-1]
    for kind, key in (("env", "DB_PASSWORD"), ("label", "com.example.deploy-token")):
        [f] = [f for f in doc["findings"] if f["location"]["kind"] == kind and f["location"]["key"] == key]
        assert f["also_in_history"] and all(key in lines[i] for i in f["also_in_history"])
    files = [f for f in doc["findings"] if f["location"]["kind"] == "file"]
    assert all(f["deleted"] is False for f in files)
    # same answers in --show-secrets mode, with the values
    _, shown, raw_shown = scan_json(archive, "--show-secrets")
    assert {f["match"] for f in shown["findings"]} >= {password, label_token, stripe, db_password, npm}


# ------------------------------------------------------------------------------------------------
# false positives: a clean Debian minbase image


def test_debian_minbase_has_no_high_findings(tmp_path, base):
    archive = docker_save("bilge-base:bookworm", tmp_path / "base.tar")
    rc, doc, _ = scan_json(archive)
    assert [f for f in doc["findings"] if f["severity"] in ("critical", "high")] == []
    assert rc == 0
    st = doc["stats"]
    assert st["scanned"]["files"] > 1000 and st["skipped"]["binary"]["files"] > 500
