"""Every user-facing failure is a BilgeError: the CLI prints its message on one line and exits 2."""

from __future__ import annotations


class BilgeError(Exception):
    """Bad input or usage: one line on stderr, exit code 2."""

    exit_code = 2


class NotAnImageError(BilgeError):
    """The input exists but is not a container image."""


class ImageFormatError(BilgeError):
    """The image is malformed: bad JSON, missing blob, loop, unknown media type ..."""


class DigestMismatchError(BilgeError):
    """A blob or layer does not hash to what its descriptor or the config says."""


class AmbiguousImageError(BilgeError):
    """Several images or platforms match and the user must choose."""


class UnsupportedMediaTypeError(BilgeError):
    """A layer or manifest media type bilge cannot read."""


class OutputError(BilgeError):
    """An output path cannot be written."""
