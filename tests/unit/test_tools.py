"""The peers (lddtree, skopeo, umoci, ...) are run one way, whatever ``python3`` is first on PATH.

Issue 9: Debian's ``/usr/bin/lddtree`` starts with ``#!/usr/bin/env python3``; on a machine whose first
``python3`` is not Debian's, it failed on ``import elftools`` in every test that used it.
"""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest

from tests import tools
from tests.tools import PEERS, argv, run_tool, which

REPO = Path(__file__).resolve().parents[2]


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def hostile_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH whose first ``python3`` is not Debian's and cannot import anything: it exits 97."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _executable(bindir / "python3", "#!/bin/sh\necho 'wrong python3' >&2\nexit 97\n")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    tools._interpreter_prefix.cache_clear()
    return bindir


@pytest.mark.skipif(not os.access("/usr/bin/python3", os.X_OK), reason="no Debian /usr/bin/python3")
def test_env_shebang_script_runs_under_debians_interpreter(hostile_python: Path) -> None:
    script = _executable(hostile_python / "peer-script",
                         "#!/usr/bin/env python3\nimport sys\nprint(sys.executable)\n")
    assert argv("peer-script") == ["/usr/bin/python3", str(script)]
    proc = run_tool("peer-script")
    assert proc.stdout.strip() == "/usr/bin/python3"


@pytest.mark.skipif(which("lddtree") is None, reason="needs pax-utils lddtree")
def test_lddtree_works_with_a_foreign_python3_first_on_path(hostile_python: Path) -> None:
    """The failure of issue 9, reproduced: lddtree must import elftools from Debian's python3."""
    proc = run_tool("lddtree", "-l", "/bin/true")
    assert any(line.endswith("libc.so.6") for line in proc.stdout.split()), proc.stdout


def test_binary_and_absolute_shebang_are_run_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = _executable(bindir / "abs-shebang", "#!/bin/sh\necho ok\n")
    monkeypatch.setenv("PATH", str(bindir))
    assert argv("abs-shebang") == [str(script)]
    assert run_tool("abs-shebang").stdout == "ok\n"


def test_missing_peer_names_its_package() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-peer-xyz"):
        argv("no-such-peer-xyz")


def test_failure_message_carries_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _executable(bindir / "failing-peer", "#!/bin/sh\necho 'the reason it failed' >&2\nexit 3\n")
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(tools.ToolError, match="the reason it failed"):
        run_tool("failing-peer")


def test_search_path_puts_debian_first_without_duplicates() -> None:
    got = tools.search_path("/root/.pyenv/shims:/usr/bin:/opt/x").split(os.pathsep)
    assert got[: len(tools.DEBIAN_DIRS)] == list(tools.DEBIAN_DIRS)
    assert got.count("/usr/bin") == 1 and got[-2:] == ["/root/.pyenv/shims", "/opt/x"]


def _sources() -> list[Path]:
    files = [*REPO.joinpath("tests").rglob("*.py"), *REPO.joinpath("benchmarks").glob("*.py")]
    return [p for p in files if p.resolve() != Path(tools.__file__).resolve()]


# helpers that take a command's words as positional arguments (``run("skopeo", ...)``)
_RUNNERS = {"run", "sh", "call", "check_call", "check_output", "Popen", "run_measured", "system", "execvp"}


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _peer_word(node: ast.AST | None) -> str | None:
    """The peer a command starts with: ``"lddtree"`` or ``["lddtree", ...]``; else None."""
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        node = node.elts[0]
    if isinstance(node, ast.Constant) and node.value in PEERS:
        return node.value
    return None


def _bare_peer_calls(path: Path) -> list[str]:
    """Places where ``path`` runs a peer by bare name: ``subprocess.run(["lddtree", ...])``,
    ``run("skopeo", ...)``, ``cmd = ["umoci", ...]`` or ``shutil.which("lddtree")``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            callee, peer = _callee(node), _peer_word(node.args[0])
            if peer and (callee in _RUNNERS or callee == "which" and isinstance(node.func, ast.Attribute)):
                found.append(f"{where}:{node.lineno}: {callee}({peer!r}...)")
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in ("cmd", "argv", "command")
                                                  for t in node.targets):
            if isinstance(node.value, ast.List) and (peer := _peer_word(node.value)):
                found.append(f"{where}:{node.lineno}: cmd = [{peer!r}, ...]")
    return found


def test_no_test_or_benchmark_runs_a_peer_by_bare_name() -> None:
    """Every peer goes through tests.tools (argv/run_tool/which), so issue 9 cannot come back in one place."""
    offenders = [hit for path in _sources() for hit in _bare_peer_calls(path)]
    assert not offenders, "run peers through tests.tools.argv/run_tool/which:\n" + "\n".join(offenders)


def test_the_guard_sees_a_bare_call(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('import shutil, subprocess\nsubprocess.run(["lddtree", "-l", "x"])\nshutil.which("umoci")\n'
                     'run("skopeo", "inspect", "x")\nCompression("gzip", 3)\nfor f in ("gzip", "zstd"): pass\n'
                     'cmd = ["buildah", "bud"]\n')
    hits = sorted(_bare_peer_calls(probe), key=lambda h: int(h.split(":")[1]))
    assert [h.split(":")[1] for h in hits] == ["2", "3", "4", "7"], hits


def test_ci_installs_every_debian_peer() -> None:
    """Each peer's Debian package is in .ci/run's package list (or .ci/run installs it another way)."""
    ci = (REPO / ".ci" / "run").read_text()
    preinstalled = {"coreutils", "util-linux", "libc-bin", "tar", "gzip"}  # Essential: yes on Debian
    for name, package in PEERS.items():
        if package.startswith(".ci/run"):
            assert name in ci, f"{name}: .ci/run does not install it"
        elif package not in preinstalled:
            assert f" {package}" in ci or f"\n  {package}" in ci, f"{name}: .ci/run does not install {package}"
