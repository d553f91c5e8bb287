"""Lint judges a RUN by the state it leaves, and a key file by what it is (issue 12)."""

from __future__ import annotations

from bilge.dockerfile.parse import parse_text
from bilge.dockerfile.rules import LintOptions, lint

# the pattern of the official language images (python, ruby, node ...), written for this test
OFFICIAL = """FROM debian:bookworm-slim
RUN set -eux; \\
    savedAptMark="$(apt-mark showmanual)"; \\
    apt-get update; \\
    apt-get install -y --no-install-recommends gcc make libssl-dev dpkg-dev; \\
    ./configure && make -j2 && make install; \\
    apt-mark auto '.*' > /dev/null; \\
    [ -z "$savedAptMark" ] || apt-mark manual $savedAptMark; \\
    apt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false; \\
    rm -rf /var/lib/apt/lists/*
CMD ["app"]
"""


def rules(text: str, **opts) -> set[tuple[int, str]]:
    return {(f.line, f.rule) for f in lint(parse_text(text), LintOptions(**opts))}


def test_toolchain_installed_and_auto_purged_in_one_run_ships_nothing():
    assert not any(r in ("single-stage-build", "toolchain-in-final-stage") for _, r in rules(OFFICIAL))


def test_without_the_purge_the_toolchain_ships():
    text = OFFICIAL.replace("apt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false; \\\n", "")
    assert (2, "single-stage-build") in rules(text)


def test_apt_mark_auto_alone_removes_nothing():
    text = OFFICIAL.replace("apt-get purge -y --auto-remove", "apt-get purge -y")
    assert (2, "single-stage-build") in rules(text)


def test_a_package_marked_manual_by_name_stays():
    text = OFFICIAL.replace("apt-mark manual $savedAptMark", "apt-mark manual $savedAptMark gcc")
    got = [f for f in lint(parse_text(text)) if f.rule == "single-stage-build"]
    assert len(got) == 1 and got[0].details["packages"] == ["gcc"]


def test_auto_purge_in_a_multistage_final_stage():
    text = "FROM a AS build\nRUN make\n" + OFFICIAL.replace("FROM debian:bookworm-slim", "FROM debian AS final")
    assert not any(r == "toolchain-in-final-stage" for _, r in rules(text))


def test_public_key_destination_is_not_a_secret_copy():
    text = "FROM debian\nCOPY repo.key /usr/share/keyrings/repo.gpg\nCOPY deploy.key /etc/app/deploy.key\n"
    got = rules(text)
    assert (2, "secret-copy") not in got and (3, "secret-copy") in got


def test_secret_copy_decided_by_content_when_the_context_holds_the_file(tmp_path):
    (tmp_path / "signing.key").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBF...\n"
                                          "-----END PGP PUBLIC KEY BLOCK-----\n")
    (tmp_path / "id.pub.key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
                                         "-----END OPENSSH PRIVATE KEY-----\n")
    text = "FROM debian\nCOPY signing.key /etc/app/signing.key\nCOPY id.pub.key /etc/app/id.pub\n"
    got = rules(text, context=str(tmp_path))
    # the public key named .key is fine; the private key named .pub is a secret whatever its names say
    assert (2, "secret-copy") not in got and (3, "secret-copy") in got
    # without the context the names decide: .key is a secret, a .pub destination is not
    got = rules(text)
    assert (2, "secret-copy") in got and (3, "secret-copy") not in got
