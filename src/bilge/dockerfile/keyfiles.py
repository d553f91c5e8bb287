"""Is a key file a secret? Judged by its content when the build context is at hand, else by names (issue 12).

``COPY repo.key /usr/share/keyrings/repo.gpg`` installs a public signing key; ``COPY id_rsa.pub``
an SSH public key; ``COPY server.pem`` may be a certificate. None of them is a secret. The content
decides when the file is in the build context (a private-key PEM header is a secret whatever the
names say); without it, a source or destination name that says "public" does (``*.pub``,
``*.asc``, ``*.gpg``, ``*public*``, ``*pubkey*``, apt's keyring directories).
"""

from __future__ import annotations

import fnmatch
import posixpath
from pathlib import Path

_PUBLIC_NAMES = ("*.pub", "*.asc", "*.gpg", "*public*", "*pubkey*", "*.crt", "*.cer")
_KEYRING_DIRS = ("/usr/share/keyrings/", "/etc/apt/keyrings/", "/etc/apt/trusted.gpg.d/", "/etc/pki/rpm-gpg/")
# OpenPGP binary packets that start a public key (old and new formats), a transferable public key
_PGP_PUBLIC_TAGS = (0x98, 0x99, 0x9A, 0xC6)


def content_is_public(head: bytes) -> bool | None:
    """True: a public key or certificate; False: a private key; None: the content does not say."""
    if b"PRIVATE KEY" in head:
        return False
    if (b"-----BEGIN PUBLIC KEY-----" in head or b"-----BEGIN RSA PUBLIC KEY-----" in head
            or b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in head or b"-----BEGIN CERTIFICATE-----" in head
            or head.startswith((b"ssh-rsa ", b"ssh-ed25519 ", b"ssh-dss ", b"ecdsa-sha2-", b"sk-ssh-"))):
        return True
    if head and head[0] in _PGP_PUBLIC_TAGS:
        return True
    return None


def names_say_public(*paths: str) -> bool:
    for p in paths:
        if not p:
            continue
        base = posixpath.basename(p.rstrip("/")).lower()
        if any(w in base for w in ("secret", "private", "secring")):
            return False  # secring.gpg, private.asc: a secret keyring whatever the extension
        if any(fnmatch.fnmatchcase(base, pat) for pat in _PUBLIC_NAMES):
            return True
        if any(("/" + p.lstrip("/")).startswith(d) for d in _KEYRING_DIRS):
            return True
    return False


def not_a_secret(source: str, dest: str, on_disk: Path | None) -> bool:
    """Whether a file named like a credential is in fact public (skip secret-copy)."""
    if on_disk is not None and on_disk.is_file():
        try:
            with on_disk.open("rb") as fh:
                head = fh.read(65536)
        except OSError:
            head = b""
        verdict = content_is_public(head)
        if verdict is not None:
            return verdict
    return names_say_public(source, dest)
