"""The one compression sniffer: what a layer blob is, from its magic bytes (a leaf module).

Readers of layers (:mod:`bilge.layers`), of archives (:mod:`bilge.source.archive`) and of existing layers
being copied (:mod:`bilge.sink.layer`) all ask :func:`sniff`.
"""

from __future__ import annotations

import tarfile

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sniff(head: bytes) -> str:
    """What a blob is, from its first bytes (262 or more to recognise a tar): gzip, zstd, bzip2, xz, tar or
    unknown."""
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    if head[:4] == ZSTD_MAGIC:
        return "zstd"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if not head.strip(b"\x00"):
        return "tar"  # an empty tar: only zero blocks (or a zero-length blob)
    if len(head) >= 512:
        try:
            tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
            return "tar"  # a pre-POSIX (v7) tar header
        except tarfile.HeaderError:
            pass
    return "unknown"
