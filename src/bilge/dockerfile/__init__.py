"""Dockerfile analysis for `bilge lint`: a model on BuildKit's parser, rules, and the bytes each finding costs.

>>> from bilge.dockerfile import parse_file, lint, LintOptions
>>> findings = lint(parse_file("Dockerfile"), LintOptions(context="."))
"""

from bilge.dockerfile.parse import Dockerfile, DockerfileParseError, parse_file, parse_text
from bilge.dockerfile.rules import RULES, Finding, LintOptions, lint

__all__ = ["RULES", "Dockerfile", "DockerfileParseError", "Finding", "LintOptions", "lint", "parse_file",
           "parse_text"]
