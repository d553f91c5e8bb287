"""PathSet (the path classes' fast search) says yes exactly when ``re.search`` of the joined patterns does."""

from __future__ import annotations

import re
import tomllib
from importlib import resources

import pytest

from bilge.errors import BilgeError
from bilge.layers import iter_layer
from bilge.secrets.pathset import PathSet, has_top_level_alternation
from bilge.source import open_image

EDGE_PATHS = [
    "", "usr", "usr/", "usr/local", "usr/local/", "usr/localx/f", "usr/bin/env", "bin/sh", "sbin", "lib64/x",
    ".env", "x/.env", "x/.env.prod", "x/.envy/y", "etc/x", "etc/x/y", "a/etc/b", "node_modules/x",
    "a/node_modules/", "anode_modules/x", "a/b/site-packages/c.py", "a/site-packagesx/c", "gems/rack-2.2/x",
    "a/gems/rack/x", "opt/miniconda3/x", "opt/yarn-v1.22.19/x", ".netrc", "root/.netrc", "x/.bashrc",
    "app/config/database.yml", "srv/Dockerfile", "srv/Dockerfile.dev", "a//b", "/usr/lib/x", "a/\nusr/x",
]


def _builtin_paths() -> dict[str, list[str]]:
    text = (resources.files("bilge") / "data" / "secrets" / "rules.toml").read_text()
    return tomllib.loads(text)["paths"]


def _image_paths(fixture_images) -> list[str]:
    out: list[str] = []
    for tar in sorted(fixture_images.glob("*.tar")):
        try:
            with open_image(str(tar)) as src:
                for layer in src.image.layers:
                    out.extend(e.path for e in iter_layer(src, layer))
        except BilgeError:  # the fixtures include deliberately broken images
            continue
    return out


def _agrees(patterns: list[str], paths: list[str]) -> None:
    joined = re.compile("|".join(f"(?:{p})" for p in patterns))
    fast = PathSet(patterns)
    for path in paths:
        assert (fast.search(path) is not None) == (joined.search(path) is not None), (path, patterns)


def test_builtin_path_classes_agree_with_the_joined_regex(fixture_images):
    paths = _image_paths(fixture_images)
    assert len(paths) > 1000
    paths += [p for base in paths for p in ("a/" + base, "usr/local/" + base, "data/copy1/" + base)]
    paths += EDGE_PATHS
    classes = _builtin_paths()
    assert {"library", "config", "code", "not_secrets"} <= set(classes)
    for patterns in classes.values():
        _agrees(patterns, paths)


@pytest.mark.parametrize("patterns", [
    ["(?:^|/)a|b/"],  # a top-level '|' after the prefix: searched as written
    ["^a|b"],
    ["^(?:a|b)/", "(?:^|/)[|]x", r"(?:^|/)\|y", "(?:^|/)[]|]z", "(?:^|/)[^]|]w$"],
    ["(?:^|/)", "^"],
    [r"(?:^|/)(?<=/)q", r"(?:^|/)(?!n)\w+/$", r"\.py$", "^usr/(?!local/)"],
])
def test_hand_written_patterns_agree(patterns):
    alphabet = ["a", "b", "q", "x", "y", "z", "w", "n", "usr", "local", "|", "]", "p.py", ""]
    paths = ["/".join(parts) for parts in _products(alphabet, 3)] + EDGE_PATHS
    _agrees(patterns, paths)


def _products(alphabet: list[str], depth: int) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for _ in range(depth):
        out += [p + (a,) for p in out if len(p) == len(out[-1]) for a in alphabet]
    return out


@pytest.mark.parametrize("pattern,expected", [
    ("a|b", True), ("(?:a|b)", False), ("[|]", False), (r"\|", False), ("[]|]", False), ("[^]|]", False),
    ("(a)|b", True), ("a(b|c)d", False), (r"[\]|]x", False), ("x[a-z]|y", True),
])
def test_top_level_alternation(pattern, expected):
    assert has_top_level_alternation(pattern) is expected
