"""`broad-copy-from` with --image: what of a copied directory the image's programs really load.

Images are written in code from roots compiled with gcc (tests/unit/test_deps_roots.py): the programs and
the libraries each one links against are known by construction, so the expected needed set and its bytes
come from the files on disk, not from bilge. The integration test (tests/integration/test_lint_needed.py)
checks the same on an engine-built Debian image against lddtree.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_deps_roots import Root, have_gcc  # noqa: E402

from bilge.testing import config_for, docker_archive, layer_tar  # noqa: E402

pytestmark = pytest.mark.skipif(not have_gcc(), reason="needs gcc and the host's glibc")
LIBDIR = "usr/lib/x86_64-linux-gnu"

DOCKERFILE = "FROM base\nRUN make install\nCOPY --from=build /usr/lib /usr/lib\n"
HISTORY = [
    {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
    {"created_by": "RUN /bin/sh -c make install # buildkit"},
    {"created_by": "COPY /usr/lib /usr/lib # buildkit"},
]


def items(root: Path, rels: list[str]) -> list[tuple]:
    """Layer items for exactly ``rels`` (files and symlinks as they are), parents first."""
    out: list[tuple] = []
    dirs: set[str] = set()
    for rel in rels:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs and not (root / d).is_symlink():
                dirs.add(d)
                out.append(("dir", d))
        full = root / rel
        if full.is_symlink():
            out.append(("symlink", rel, os.readlink(full)))
        else:
            out.append(("file", rel, full.read_bytes(), full.stat().st_mode & 0o777))
    return out


def base_items(root: Path) -> list[tuple]:
    return items(root, [f"{LIBDIR}/ld-linux-x86-64.so.2", f"{LIBDIR}/libc.so.6", "lib", "lib64",
                        "usr/lib64/ld-linux-x86-64.so.2"])


def lint_json(tmp_path: Path, layers: list[list[tuple]], config: dict | None = None,
              dockerfile: str = DOCKERFILE, history: list[dict] | None = None) -> dict:
    from bilge.cli import main

    tars = [layer_tar(x) for x in layers]
    cfg = config_for(tars, raw_history=history or HISTORY)
    cfg["config"].update(config or {})
    docker_archive(tmp_path / "img.tar", layers, config=cfg)
    (tmp_path / "Dockerfile").write_text(dockerfile)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(["lint", "Dockerfile", "--image", "img.tar", "-f", "json"])
            except SystemExit as exc:
                assert exc.code in (0, 1, None), err.getvalue()
    finally:
        os.chdir(cwd)
    return json.loads(out.getvalue())


def broad(doc: dict) -> dict:
    hits = [f for f in doc["findings"] if f["rule"] == "broad-copy-from"]
    assert len(hits) == 1, doc["findings"]
    return hits[0]


@pytest.fixture
def root(tmp_path: Path) -> Root:
    return Root(tmp_path / "root", tmp_path / "work").glibc()


def test_needed_part_of_the_copy(root: Root, tmp_path: Path) -> None:
    foo = root.lib(f"{LIBDIR}/libfoo.so.1.0", "libfoo.so.1", "foo", "FOO")
    root.symlink(f"{LIBDIR}/libfoo.so.1", "libfoo.so.1.0")
    bar = root.lib(f"{LIBDIR}/libbar.so.1", "libbar.so.1", "bar", "BAR")
    root.lib(f"{LIBDIR}/libunused.so.1", "libunused.so.1", "unused", "UNUSED" * 4000)
    root.write("usr/lib/data/big.dat", b"d" * 50_000)
    root.prog("usr/bin/p", ((foo, "foo"),))
    root.prog("opt/tool/bin/t", ((bar, "bar"),))
    copied = [f"{LIBDIR}/libfoo.so.1.0", f"{LIBDIR}/libfoo.so.1", f"{LIBDIR}/libbar.so.1",
              f"{LIBDIR}/libunused.so.1", f"{LIBDIR}/libc.so.6", f"{LIBDIR}/ld-linux-x86-64.so.2",
              "usr/lib/data/big.dat"]
    doc = lint_json(tmp_path, [base_items(root.path), items(root.path, ["usr/bin/p", "opt/tool/bin/t"]),
                               items(root.path, copied)])
    f = broad(doc)
    d = f["details"]
    size = {rel: (root.path / rel).stat().st_size for rel in copied if not (root.path / rel).is_symlink()}
    # p loads libfoo (through the libfoo.so.1 link) and libc; t loads libbar and libc; both need the loader
    want = [f"{LIBDIR}/ld-linux-x86-64.so.2", f"{LIBDIR}/libbar.so.1", f"{LIBDIR}/libc.so.6", f"{LIBDIR}/libfoo.so.1.0"]
    assert d["needed_paths"] == ["/" + p for p in want]
    assert d["needed_files"] == 4 and d["needed_bytes"] == sum(size[p] for p in want)
    assert d["needed_links"] == 1  # libfoo.so.1 -> libfoo.so.1.0, written by the COPY
    # libc and the loader were in the base layer already
    assert d["needed_already_bytes"] == size[f"{LIBDIR}/libc.so.6"] + size[f"{LIBDIR}/ld-linux-x86-64.so.2"]
    assert f["bytes"] == d["layer_bytes"] == sum(size.values()) > d["needed_bytes"]
    assert d["deps_roots"] == {"dest": "/usr/lib", "entrypoint": False, "paths": ["/opt", "/usr/bin"],
                               "binaries": [], "programs": 2}
    assert d["deps_missing"] == []
    assert d["deps_command"] == ("bilge deps img.tar --path /opt --path /usr/bin --format dockerfile --from build")
    assert "finds" in f["message"] and "in 4 files of it needed by 2 ELF files outside /usr/lib" in f["message"]
    assert d["deps_command"] in f["fix"]

    # the printed command asks bilge deps for the same closure: its files inside the copy are the needed ones
    from bilge.cli import main

    args = shlex.split(d["deps_command"])[2:]
    args[0] = str(tmp_path / "img.tar")
    fmt = args.index("--format")
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        try:
            main(["deps", *args[:fmt], "--format", "json"])
        except SystemExit as exc:
            assert exc.code in (0, None)
    deps = json.loads(out.getvalue())
    inside = sorted(x["path"] for x in deps["files"] if x["kind"] == "file" and x["role"] != "likely"
                    and x["path"].startswith("/usr/lib/"))
    assert inside == d["needed_paths"]


def test_entrypoint_and_binaries_in_an_ancestor_of_the_destination(root: Root, tmp_path: Path) -> None:
    """A program right in /usr (an ancestor of /usr/lib) is a --binary; the Entrypoint comes from the config."""
    foo = root.lib(f"{LIBDIR}/libfoo.so.1", "libfoo.so.1", "foo", "FOO")
    root.prog("usr/odd", ((foo, "foo"),))
    root.prog("usr/bin/plain", ())
    doc = lint_json(tmp_path, [base_items(root.path), items(root.path, ["usr/odd", "usr/bin/plain"]),
                               items(root.path, [f"{LIBDIR}/libfoo.so.1"])],
                    config={"Entrypoint": ["plain"], "Env": ["PATH=/usr/bin"]})
    d = broad(doc)["details"]
    assert d["deps_roots"]["binaries"] == ["/usr/odd"] and d["deps_roots"]["paths"] == ["/usr/bin"]
    assert d["deps_roots"]["entrypoint"] is True
    assert d["deps_command"].startswith("bilge deps img.tar --entrypoint --path /usr/bin --binary /usr/odd ")
    assert d["needed_paths"] == [f"/{LIBDIR}/libfoo.so.1"] and d["needed_already_bytes"] == 0


def test_missing_libraries_and_entrypoint_are_reported_not_fatal(root: Root, tmp_path: Path) -> None:
    gone = root.lib("../elsewhere/libgone.so.1", "libgone.so.1", "gone", "GONE")  # never put in the image
    foo = root.lib(f"{LIBDIR}/libfoo.so.1", "libfoo.so.1", "foo", "FOO")
    root.prog("usr/bin/q", ((gone, "gone"), (foo, "foo")))
    doc = lint_json(tmp_path, [base_items(root.path), items(root.path, ["usr/bin/q"]),
                               items(root.path, [f"{LIBDIR}/libfoo.so.1"])],
                    config={"Cmd": ["nosuch", "--serve"]})
    f = broad(doc)
    d = f["details"]
    assert {m["soname"]: m["needed_by"] for m in d["deps_missing"]} == {
        "libgone.so.1": ["/usr/bin/q"], "nosuch": ["Entrypoint/Cmd"]}
    assert "Missing in the image: " in f["message"] and "libgone.so.1 (needed by /usr/bin/q)" in f["message"]
    assert d["needed_paths"] == [f"/{LIBDIR}/libfoo.so.1"]


def test_an_entrypoint_bilge_cannot_read_is_a_note(root: Root, tmp_path: Path) -> None:
    root.write("usr/local/run.txt", "not a program\n", 0o755)
    root.prog("usr/bin/plain", ())
    doc = lint_json(tmp_path, [base_items(root.path), items(root.path, ["usr/local/run.txt", "usr/bin/plain"]),
                               items(root.path, [f"{LIBDIR}/libc.so.6"])],
                    config={"Entrypoint": ["/usr/local/run.txt"]})
    f = broad(doc)
    assert "Note: the Entrypoint/Cmd could not be resolved (/usr/local/run.txt: neither an ELF file nor a #! script)" \
        in f["message"]
    assert f["details"]["needed_paths"] == [f"/{LIBDIR}/libc.so.6"]
    assert f["details"]["deps_roots"]["programs"] == 1


def test_no_program_at_all(tmp_path: Path) -> None:
    """No ELF file outside the copy and no Entrypoint/Cmd: say so, give a --binary command to fill in."""
    layers = [[("file", "etc/os-release", b"ID=test\n")], [("file", "usr/bin/readme", b"text")],
              [("file", f"{LIBDIR}/libz.so.1", b"\x7fELF" + b"\0" * 60), ("file", "usr/lib/x.txt", b"x" * 900)]]
    doc = lint_json(tmp_path, layers)
    f = broad(doc)
    assert f["bytes"] == 964 and f["details"]["needed_bytes"] is None
    assert "found no program outside /usr/lib to resolve (no Entrypoint/Cmd and no ELF file elsewhere" in f["message"]
    assert "`bilge deps img.tar --binary PATH --format dockerfile --from build`" in f["message"]


def test_without_broad_copy_no_elf_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ELF reader joins the image pass only when a broad COPY --from is reported."""
    import bilge.deps

    calls = []
    real = bilge.deps.ElfCollector.__call__
    monkeypatch.setattr(bilge.deps.ElfCollector, "__call__", lambda self, *a: (calls.append(1), real(self, *a))[1])
    lint_json(tmp_path, [[("file", "a", b"1")], [("file", "b", b"2")], [("file", "usr/lib/c", b"3")]],
              dockerfile="FROM base\nRUN make install\nCOPY --from=build /usr/lib/c /usr/lib/c\n")
    assert calls == []
    lint_json(tmp_path, [[("file", "a", b"1")], [("file", "b", b"2")], [("file", "usr/lib/c", b"3")]])
    assert len(calls) == 3
