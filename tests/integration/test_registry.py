"""docker:// with a REAL registry (Debian's docker-registry on 127.0.0.1:<free port>) in three set-ups
(no auth, htpasswd bcrypt, Bearer tokens from a token server of the tests), and the faults a registry
can throw: a connection dropped mid-blob, a stopped registry, a wrong password, a manifest whose bytes
do not match their digest, a missing blob, a redirect to another host. Images are pushed with skopeo
and ``docker push`` and read back with skopeo; bilge's numbers are compared with the same image read
from ``oci:``."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bilge.secrets.precision import github_token
from bilge.testing import oci_layout
from tests.integration.conftest import DOCKER, docker_rmi, require_tool, run
from tests.integration.registry_env import PASSWORD, USER, BlobHost, FaultProxy, Faults, Registry, sha256_file
from tests.tools import run_tool

BILGE = [sys.executable, "-m", "bilge"]
RNG_LAYER = random.Random(10).randbytes(3 << 20)  # 3 MiB, incompressible
LAYERS = [
    [("dir", "etc"), ("file", "etc/os-release", b"ID=test\n"), ("file", "etc/big", RNG_LAYER)],
    [("dir", "app"), ("file", "app/run.sh", b"#!/bin/sh\necho hi\n", 0o755), ("whiteout", "etc/big")],
    [("file", "app/config", b"TOKEN=" + github_token("ghp_", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5").encode() + b"\n")],
]


def bilge(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([*BILGE, *args], capture_output=True, text=True, timeout=timeout, env=full)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "layout"
    oci_layout(path, [{"layers": LAYERS, "ref": "v1"}], archive=False)
    return path


def _registry(tmp_path_factory, auth: str):
    require_tool("docker-registry")
    require_tool("skopeo")
    if auth == "htpasswd":
        require_tool("htpasswd")
    reg = Registry(tmp_path_factory.mktemp(f"registry-{auth}"), auth=auth).start()
    return reg


@pytest.fixture(scope="module", params=["none", "htpasswd", "token"])
def registry(request, tmp_path_factory):
    reg = _registry(tmp_path_factory, request.param)
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory):
    reg = _registry(tmp_path_factory, "none")
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory):
    reg = _registry(tmp_path_factory, "htpasswd")
    yield reg
    reg.close()


def creds(reg: Registry) -> list[str]:
    return [] if reg.auth == "none" else ["--creds", f"{USER}:{PASSWORD}"]


def analyze_json(*args: str) -> dict:
    proc = bilge("analyze", "-f", "json", *args)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return doc


def numbers(doc: dict) -> tuple:
    return (doc["summary"], [(x["digest"], x["compressed_bytes"], x["layer_bytes"], x["reclaimable_bytes"])
                             for x in doc["layers"]], doc["wasted"])


# ---------------------------------------------------------------------------------------------
# reading, every set-up


def test_read_pushed_image_equals_local_layout(registry, layout):
    ref = registry.push(f"oci:{layout}:v1", "team/app:1")
    remote = analyze_json(ref, *creds(registry))
    local = analyze_json(f"oci:{layout}:v1")
    assert numbers(remote) == numbers(local)
    # the manifest digest bilge reports is the one skopeo reads from the registry
    assert remote["image"]["digest"] == registry.inspect(ref)["Digest"]
    # digest-pinned, and the scan of the same image finds the same secret as from oci:
    pinned = ref.rsplit(":", 1)[0] + "@" + remote["image"]["digest"]
    sec = bilge("secrets", "-f", "json", pinned, *creds(registry))
    assert sec.returncode == 1, sec.stderr
    assert [f["location"]["path"] for f in json.loads(sec.stdout)["findings"]] == ["app/config"]
    if registry.auth == "token":
        assert registry.token is not None
        ours = [r for r in registry.token.requests if r["ok"] and r["user"] == USER]
        assert ours, "no token was asked for"


def test_credentials_from_an_auth_file(basic_registry, layout, tmp_path):
    ref = basic_registry.push(f"oci:{layout}:v1", "team/authfile:1")
    auth = tmp_path / "auth.json"
    import base64

    auth.write_text(json.dumps({"auths": {basic_registry.host: {
        "auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}))
    proc = bilge("analyze", "-q", ref, env={"REGISTRY_AUTH_FILE": str(auth)})
    assert proc.returncode == 0, proc.stderr
    # and without any credentials: one line naming what to do, exit 2
    proc = bilge("analyze", ref, env={"REGISTRY_AUTH_FILE": str(tmp_path / "none.json"),
                                       "DOCKER_CONFIG": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path),
                                       "XDG_CONFIG_HOME": str(tmp_path)})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "401" in proc.stderr and "--creds" in proc.stderr


def test_wrong_password_is_one_line_without_the_password(registry, layout, tmp_path):
    if registry.auth == "none":
        pytest.skip("no auth in this set-up")
    ref = registry.push(f"oci:{layout}:v1", "team/app:1")
    wrong = "Wr0ng-Secret-Value-42"
    proc = bilge("analyze", ref, "--creds", f"{USER}:{wrong}", env={"DOCKER_CONFIG": str(tmp_path)})
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "401" in proc.stderr, proc.stderr
    assert wrong not in proc.stderr + proc.stdout and PASSWORD not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_docker_push_then_read(plain_registry, base_image):
    """An image the engine pushed (docker push to a loopback registry: insecure is allowed there)."""
    tag = f"{plain_registry.host}/registry-branch/base:pushed"
    run([DOCKER, "tag", base_image, tag])
    try:
        run([DOCKER, "push", tag])
        remote = analyze_json(f"docker://{tag}")
        assert remote["image"]["digest"] == plain_registry.inspect(f"docker://{tag}")["Digest"]
        local = analyze_json(f"docker-daemon:{base_image}")
        for key in ("visible_bytes", "layer_bytes", "files", "directories", "symlinks", "hardlinks"):
            assert remote["summary"][key] == local["summary"][key], key
        assert remote["image"]["image_id"] == local["image"]["image_id"]
    finally:
        docker_rmi(tag)


def test_multi_platform_index_and_schema1_refusal(plain_registry, tmp_path):
    multi = tmp_path / "multi"
    oci_layout(multi, [{"layers": LAYERS[:1], "platform": "linux/amd64", "group": "m"},
                       {"layers": LAYERS[:2], "platform": "linux/arm64", "group": "m"}], archive=False)
    ref = plain_registry.push(f"oci:{multi}:m", "team/multi:1", "--all")
    arm = analyze_json(ref, "--platform", "linux/arm64/v8")
    assert arm["image"]["platform"] == "linux/arm64" and len(arm["layers"]) == 2
    amd = analyze_json(ref, "--platform", "linux/amd64")
    assert len(amd["layers"]) == 1
    proc = bilge("analyze", ref, "--platform", "linux/s390x")
    assert proc.returncode == 2 and "no image for platform linux/s390x" in proc.stderr


# ---------------------------------------------------------------------------------------------
# writing


def test_push_with_bilge_read_back_with_skopeo_and_docker(plain_registry, layout, tmp_path):
    src = plain_registry.push(f"oci:{layout}:v1", "team/src:1")
    dst = f"docker://{plain_registry.host}/team/slim:2"
    proc = bilge("squash", src, "--from-layer", "1", "-o", dst)
    assert proc.returncode == 0, proc.stderr
    pushed = next(line.split("@", 1)[1] for line in proc.stdout.splitlines() if line.strip().startswith("output"))
    info = plain_registry.inspect(dst)
    assert info["Digest"] == pushed
    # the kept base layer was mounted from team/src, not uploaded again
    src_layers = plain_registry.inspect(src)["Layers"]
    assert info["Layers"][0] == src_layers[0] and len(info["Layers"]) == 2
    # skopeo can copy it out, and bilge reads the copy with the same numbers
    run_tool("skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false", dst, f"oci:{tmp_path / 'back'}:x")
    assert numbers(analyze_json(dst)) == numbers(analyze_json(f"oci:{tmp_path / 'back'}:x"))
    # and the engine pulls it
    tag = f"{plain_registry.host}/team/slim:2"
    try:
        run([DOCKER, "pull", "-q", tag])
        out = run([DOCKER, "image", "inspect", "--format", "{{.Id}}", tag]).strip()
        assert out == analyze_json(dst)["image"]["image_id"]
    finally:
        docker_rmi(tag)


def test_chunked_upload_of_a_large_layer(plain_registry, tmp_path):
    from bilge.remote import client as client_mod

    big = tmp_path / "big"
    payload = os.urandom(20 << 20)  # incompressible: the layer blob is larger than MONOLITHIC_MAX
    oci_layout(big, [{"layers": [[("file", "blob", payload)]], "ref": "v1"}], archive=False)
    assert len(payload) > client_mod.MONOLITHIC_MAX
    src = f"oci:{big}:v1"
    dst = f"docker://{plain_registry.host}/team/big:1"
    proc = bilge("squash", src, "--compression", "none", "-o", dst)
    assert proc.returncode == 0, proc.stderr
    assert numbers(analyze_json(dst))[0]["visible_bytes"] == len(payload)
    assert plain_registry.inspect(dst)["Layers"][0] != plain_registry.inspect(dst)["Digest"]


# ---------------------------------------------------------------------------------------------
# faults


def test_dropped_connection_mid_blob_is_resumed_with_range(plain_registry, layout):
    ref = plain_registry.push(f"oci:{layout}:v1", "team/resume:1")
    big = plain_registry.inspect(ref)["Layers"][0]
    proxy = FaultProxy(plain_registry.port, Faults(cut_blob=big, cuts=1,
                                                   status_script={"/manifests/": [503, 429]}))
    try:
        via = ref.replace(plain_registry.host, proxy.host)
        doc = analyze_json(via)
        assert len([p for m, p, _h in proxy.requests if m == "GET" and "/manifests/" in p]) == 3  # 503, 429, 200
        assert numbers(doc) == numbers(analyze_json(ref))
        gets = proxy.blob_requests(big)
        assert len(gets) == 2 and "Range" not in gets[0] and gets[1].get("Range", "").startswith("bytes=")
        assert gets[1]["Range"] != "bytes=0-"
    finally:
        proxy.close()


def test_registry_stopped_mid_blob(tmp_path_factory, layout, tmp_path):
    reg = _registry(tmp_path_factory, "none")
    try:
        ref = reg.push(f"oci:{layout}:v1", "team/stop:1")
        big = reg.inspect(ref)["Layers"][0]
        proxy = FaultProxy(reg.port, Faults(cut_blob=big, cuts=1, on_cut=reg.stop))
        out = tmp_path / "out"
        try:
            via = ref.replace(reg.host, proxy.host)
            proc = bilge("squash", via, "-o", f"oci:{out}", "--retry-times", "2")
        finally:
            proxy.close()
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bilge: error: ") and "attempts" in lines[0], lines
        assert not out.exists() and not list(tmp_path.iterdir())  # no partial output, no staging left
    finally:
        reg.close()


def test_manifest_digest_mismatch_and_missing_blob(plain_registry, layout):
    ref = plain_registry.push(f"oci:{layout}:v1", "team/tamper:1")
    digest = plain_registry.inspect(ref)["Digest"]
    proxy = FaultProxy(plain_registry.port, Faults(tamper_manifests=True))
    try:
        for r in (ref, ref.rsplit(":", 1)[0] + "@" + digest):
            proc = bilge("analyze", r.replace(plain_registry.host, proxy.host))
            assert proc.returncode == 2 and "digest mismatch" in proc.stderr, proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        proxy.close()
    # a blob the manifest names but the registry does not have
    layer = plain_registry.inspect(ref)["Layers"][1]
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", plain_registry.port)
    conn.request("DELETE", f"/v2/team/tamper/blobs/{layer}")
    assert conn.getresponse().status == 202
    proc = bilge("analyze", ref)
    assert proc.returncode == 2 and "not in the registry" in proc.stderr and layer[:19] in proc.stderr, proc.stderr


def test_redirect_to_another_host_carries_no_authorization(basic_registry, layout):
    ref = basic_registry.push(f"oci:{layout}:v1", "team/redirect:1")
    other = BlobHost(basic_registry)
    proxy = FaultProxy(basic_registry.port, Faults(redirect_blobs_to=other.url))
    try:
        doc = analyze_json(ref.replace(basic_registry.host, proxy.host), *creds(basic_registry))
        assert numbers(doc) == numbers(analyze_json(ref, *creds(basic_registry)))
        assert other.seen_authorization and all(a is None for a in other.seen_authorization)
        # while the registry itself did get the credentials
        assert any("Authorization" in hd for _m, _p, hd in proxy.requests)
    finally:
        proxy.close()
        other.close()


def test_cache_downloads_once_and_is_verified_on_read(plain_registry, layout, tmp_path):
    ref = plain_registry.push(f"oci:{layout}:v1", "team/cache:1")
    big = plain_registry.inspect(ref)["Layers"][0]
    proxy = FaultProxy(plain_registry.port)
    cache = tmp_path / "cache"
    try:
        via = ref.replace(plain_registry.host, proxy.host)
        first = analyze_json(via, "--cache-dir", str(cache))
        second = bilge("secrets", "-f", "json", via, "--cache-dir", str(cache))
        assert second.returncode == 1
        assert len(proxy.blob_requests(big)) == 1
        cached = cache / "blobs" / "sha256" / big.split(":")[1]
        assert cached.is_file()
        data = bytearray(cached.read_bytes())
        data[100] ^= 0xFF
        cached.write_bytes(bytes(data))
        # a corrupt entry is noticed before use, removed, and the blob downloaded again
        assert numbers(analyze_json(via, "--cache-dir", str(cache))) == numbers(first)
        assert len(proxy.blob_requests(big)) == 2
        assert sha256_file(cached) == big
    finally:
        proxy.close()
