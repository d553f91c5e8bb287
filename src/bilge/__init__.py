"""bilge: where the bytes of a container image go, and how to get rid of the dead weight."""

__version__ = "0.1.0"
