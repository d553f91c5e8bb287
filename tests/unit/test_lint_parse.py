"""The Dockerfile model: stages, scope, WORKDIR, pragmas, parse errors with line numbers."""

from __future__ import annotations

import pytest

from bilge.dockerfile.parse import DockerfileParseError, expand, parse_file, parse_text
from bilge.errors import BilgeError


def test_stages_names_parents_and_targets():
    df = parse_text(
        "ARG BASE=debian:bookworm\n"
        "FROM $BASE AS Build\n"
        "RUN true\n"
        "FROM build AS test\n"
        "FROM ${BASE}-slim\n"
        "COPY --from=0 /a /a\n"
        "COPY --from=BUILD /b /b\n"
    )
    assert [(s.name, s.base, s.parent) for s in df.stages] == [
        ("Build", "debian:bookworm", None), ("test", "build", 0), (None, "debian:bookworm-slim", None)]
    assert df.target().index == 2
    assert df.target("TEST").index == 1  # stage names are case-insensitive, as in BuildKit
    assert [st.index for st in df.chain(df.stages[1])] == [1, 0]
    assert df.stage_ref("0").name == "Build" and df.stage_ref("build").index == 0
    srcs = [(ins.line, src.index if src else None) for ins, src, _ in df.copy_sources(df.stages[2])]
    assert srcs == [(6, 0), (7, 0)]
    with pytest.raises(BilgeError, match="no stage named 'nope'"):
        df.target("nope")


def test_leaves_are_stages_nothing_uses():
    df = parse_text("FROM a AS base\nFROM base AS dev\nFROM base AS build\nFROM b\nCOPY --from=build / /\n")
    assert [s.name for s in df.leaves()] == ["dev", None]


def test_arg_and_env_scope():
    df = parse_text(
        "ARG V=1\n"
        "FROM x AS a\n"
        "ARG V\n"                       # 3: takes the global default
        "ARG TOKEN\n"                   # 4: no value
        "ENV P=/p:$V Q=\"two words\"\n"  # 5
        "RUN echo\n"                    # 6
        "FROM a AS b\n"                 # 7: inherits ENV, not ARG
        "RUN echo\n"                    # 8
    )
    run_a = next(i for i in df.instructions if i.line == 6)
    assert run_a.scope["V"].value == "1" and run_a.scope["V"].kind == "arg"
    assert run_a.scope["TOKEN"].value is None
    assert run_a.scope["P"].value == "/p:1" and run_a.scope["Q"].value == "two words"
    run_b = next(i for i in df.instructions if i.line == 8)
    assert "TOKEN" not in run_b.scope and "V" not in run_b.scope
    assert run_b.scope["P"].value == "/p:1"


def test_env_wins_over_arg_and_workdir_user():
    df = parse_text("FROM x\nENV A=env\nARG A=arg\nWORKDIR /app\nWORKDIR sub/../src\nUSER node\nRUN true\n")
    run = df.instructions[-1]
    assert run.scope["A"].value == "env"
    assert run.workdir == "/app/src" and run.user == "node"


def test_onbuild_scope_is_separate():
    df = parse_text("FROM x\nONBUILD ARG TOKEN\nONBUILD RUN echo $TOKEN\nRUN true\n")
    trig = next(i for i in df.instructions if i.line == 3)
    assert trig.onbuild and trig.keyword == "RUN" and "TOKEN" in trig.scope
    assert "TOKEN" not in df.instructions[-1].scope


def test_onbuild_keeps_flags_and_heredocs():
    df = parse_text("FROM x\nONBUILD RUN --mount=type=cache,target=/root/.npm npm ci\n")
    ins = df.instructions[-1]
    assert ins.mounts[0].type == "cache" and ins.mounts[0].target == "/root/.npm"
    assert ins.args == ("npm ci",)


def test_mount_parsing():
    df = parse_text('FROM x\nRUN --mount=type=secret,id=npmrc,target=/root/.npmrc '
                    '--mount=type=cache,target=/var/cache/apt,sharing=locked --mount=from=b,source=/w,target=/t ls\n')
    m = df.instructions[-1].mounts
    assert [(x.type, x.id, x.target, x.from_) for x in m] == [
        ("secret", "npmrc", "/root/.npmrc", None), ("cache", None, "/var/cache/apt", None), ("bind", None, "/t", "b")]


def test_expand():
    scope = {"A": "1", "E": "", "N": None}
    assert expand("x$A-${A}", scope) == "x1-1"
    assert expand("${E:-d}|${E-d}|${U:-d}", scope) == "d||${U:-d}"
    assert expand("${A:+set}|${E:+set}", scope) == "set|"
    assert expand("$N/$UNKNOWN", scope) == "$N/$UNKNOWN"
    assert expand("$UNKNOWN", scope, keep_unknown=False) == ""
    assert expand("'$A' \"$A\" \\$A", scope) == "$A 1 $A"


@pytest.mark.parametrize("text,line,needle", [
    ("FROM a\nRUN x\nFROOM b\n", 3, "unknown instruction: FROOM"),
    ("FROM a\nRUN <<EOF\necho\n", 2, "unterminated heredoc"),
    ("RUN x\n", 1, "no build stage"),
    ("FROM a\n\nCOPY onlyone\n", 3, "COPY requires at least two arguments"),
    ("FROM a\nENV A\n", 2, "ENV must have two arguments"),
    ("FROM a b c d\n", 1, "FROM requires either one or three arguments"),
    ("FROM a\nONBUILD FROM b\n", 2, "isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD BOGUS x\n", 2, "unknown instruction: BOGUS"),
])
def test_parse_errors_name_the_line(text, line, needle):
    with pytest.raises(DockerfileParseError) as exc:
        parse_text(text, "Dockerfile")
    assert exc.value.line == line
    assert needle in str(exc.value)
    assert str(exc.value).startswith(f"Dockerfile:{line}: ")
    assert exc.value.exit_code == 2


def test_empty_and_binary_files(tmp_path):
    with pytest.raises(DockerfileParseError, match="no instructions"):
        parse_text("# only a comment\n")
    p = tmp_path / "Dockerfile"
    p.write_bytes(b"FROM a\nRUN echo \xff\xfe\n")
    with pytest.raises(DockerfileParseError) as exc:
        parse_file(p)
    assert exc.value.line == 2 and "not UTF-8" in str(exc.value)
    with pytest.raises(BilgeError, match="not found"):
        parse_file(tmp_path / "missing")
    with pytest.raises(BilgeError, match="is a directory"):
        parse_file(tmp_path)


def test_bom_is_accepted(tmp_path):
    p = tmp_path / "Dockerfile"
    p.write_bytes(b"\xef\xbb\xbfFROM a\nRUN true\n")
    assert parse_file(p).stages[0].base == "a"


def test_escape_directive_backtick():
    df = parse_text("# escape=`\nFROM a\nRUN apt-get install -y `\n    gcc `\n    make\n")
    assert df.escape == "`"
    assert df.instructions[-1].args[0].split() == ["apt-get", "install", "-y", "gcc", "make"]
    assert (df.instructions[-1].line, df.instructions[-1].end_line) == (3, 5)


def test_pragmas_next_instruction_inside_continuation_and_file_wide():
    df = parse_text(
        "# bilge: ignore-file=no-dockerignore\n"
        "FROM a\n"
        "# bilge: ignore=secret-arg, cache-not-cleaned\n"
        "\n"
        "ARG TOKEN\n"
        "RUN apt-get update \\\n"
        "    # bilge: ignore=cleanup-later-layer\n"
        "    && true\n"
        "# bilge: ignore\n"
        "RUN x\n"
    )
    assert df.file_ignores == frozenset({"no-dockerignore"})
    by_line = {df.instructions[i].line: ids for i, ids in df.pragmas.items()}
    assert by_line == {5: frozenset({"secret-arg", "cache-not-cleaned"}), 6: frozenset({"cleanup-later-layer"}),
                       10: frozenset({"all"})}
    arg = df.instructions[1]
    assert df.ignored(arg, "secret-arg") and not df.ignored(arg, "secret-copy")
    assert df.ignored(df.instructions[0], "no-dockerignore")


def test_every_fixture_parses(fixture_dockerfiles):
    files = sorted(fixture_dockerfiles.glob("*.Dockerfile"))
    assert len(files) >= 25
    for f in files:
        df = parse_file(f)
        assert df.stages, f.name
        for ins in df.instructions:
            assert 1 <= ins.line <= ins.end_line
