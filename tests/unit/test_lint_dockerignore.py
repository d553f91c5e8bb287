""".dockerignore semantics (moby/patternmatcher), checked case by case against Docker's documented rules.

The engine-backed comparison (what a real build context contains) is in tests/integration/test_lint_image.py.
"""

from __future__ import annotations

import pytest

from bilge.dockerfile.dockerignore import find, parse, walk_context


@pytest.mark.parametrize("patterns,path,excluded", [
    # patterns match from the context root, not at any depth (unlike .gitignore)
    ("node_modules", "node_modules", True),
    ("node_modules", "node_modules/a/b.js", True),
    ("node_modules", "web/node_modules/a.js", False),
    ("**/node_modules", "web/node_modules/a.js", True),
    ("**/node_modules", "node_modules/x", True),
    # * and ? never cross a slash
    ("*.md", "README.md", True),
    ("*.md", "docs/README.md", False),
    ("*/*.md", "docs/README.md", True),
    ("te?t", "test", True),
    ("te?t", "te/t", False),
    # a leading slash and ./ are cleaned away; trailing slashes too
    ("/tmp", "tmp/x", True),
    ("./log/", "log/app.log", True),
    # ** in the middle and at the end
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**", "a/x/y", True),
    ("a/**", "a", False),
    # classes and escapes
    ("[a-c].txt", "b.txt", True),
    ("[a-c].txt", "d.txt", False),
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    # exceptions: the last matching pattern wins
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "CHANGES.md", True),
    ("!README.md\n*.md", "README.md", True),
    ("docs\n!docs/keep.txt", "docs/keep.txt", False),
    ("docs\n!docs/keep.txt", "docs/other.txt", True),
    # comments (only at the start of a line), blank lines, whitespace
    ("# .env\n\n   .env   ", ".env", True),
    ("#.git", ".git/config", False),
    (".env*", ".env.production", True),
    (".env*", "config/.env", False),
])
def test_patterns(patterns, path, excluded):
    assert parse(patterns).excluded(path) is excluded


def test_root_and_dot_are_never_excluded():
    ign = parse("*\n**")
    assert not ign.excluded(".") and not ign.excluded("")
    assert ign.excluded("anything/at/all")


def test_dockerfile_specific_ignore_file_wins(tmp_path):
    (tmp_path / ".dockerignore").write_text("a\n")
    df = tmp_path / "app.Dockerfile"
    df.write_text("FROM x\n")
    assert find(tmp_path, df).excluded("a")
    (tmp_path / "app.Dockerfile.dockerignore").write_text("b\n")
    ign = find(tmp_path, df)
    assert ign.path.endswith("app.Dockerfile.dockerignore")
    assert ign.excluded("b") and not ign.excluded("a")
    assert find(tmp_path / "nothing-here", None) is None


def test_walk_context_prunes_and_measures(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("x" * 10)
    (tmp_path / "node_modules" / "p").mkdir(parents=True)
    (tmp_path / "node_modules" / "p" / "i.js").write_text("y" * 100)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("z" * 7)
    (tmp_path / "README.md").write_text("r")
    ign = parse(".git\n*.md\n")
    entries = {e.rel: (e.is_dir, e.size) for e in walk_context(tmp_path, ign, skip_dirs=frozenset({"node_modules"}))}
    assert entries == {"src/app.py": (False, 10), "node_modules": (True, 100)}
    # with an exception the excluded directory is still walked, file by file
    ign2 = parse(".git\n!.git/HEAD\n")
    rels = {e.rel for e in walk_context(tmp_path, ign2)}
    assert ".git/HEAD" in rels and "README.md" in rels
