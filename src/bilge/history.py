"""The ``created_by`` parser: one image history line taken apart, for every builder's form.

* legacy builder: ``/bin/sh -c apt-get ...``, ``/bin/sh -c #(nop)  ENV A=b``, and the build-arg
  prefix ``|2 A=1 B=2 /bin/sh -c ...`` that the legacy builder writes on every RUN after an ARG;
* BuildKit: ``RUN /bin/sh -c ... # buildkit``, ``RUN |1 A=b /bin/sh -c ... # buildkit``,
  ``ENV A=b``, ``LABEL k=v``, ``ARG NAME`` / ``ARG NAME=default``;
* other builders (buildah, kaniko) write one of the two.

A leaf module: ``bilge secrets`` scans what it finds, ``bilge analyze`` and ``bilge lint --image``
show and align the instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})


_SHELL_PREFIX = re.compile(r"(?:/bin/sh|/bin/bash|/bin/ash|/usr/bin/env\s+\S+|cmd(?:\.exe)?|powershell|pwsh)\s+(?:-c|/S\s+/C|/C|-Command)\s+")


_NOP = re.compile(r"#\(nop\)\s*")


_ARGS_PREFIX = re.compile(r"\|(\d+)\s+")


_ASSIGN_START = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=")


_KV_START = re.compile(r"(?:^|\s)([^\s=\"']+)=")


_SHELL_START = re.compile(r"\s(?=/|cmd\s|cmd\.exe|powershell|pwsh|\[)")


@dataclass(frozen=True)
class Assignment:
    name: str
    value: str
    start: int  # value span in the created_by text (characters)
    end: int


@dataclass(frozen=True)
class ParsedHistory:
    """One ``created_by`` line taken apart."""

    instruction: str  # RUN, ENV, LABEL, ARG, COPY ... ("RUN" for a plain legacy shell line)
    build_args: tuple[Assignment, ...]
    args_span: tuple[int, int] | None
    assignments: tuple[Assignment, ...]  # ENV / LABEL / ARG pairs
    body_start: int
    buildkit: bool


def _split_assignments(text: str, base: int, starter: re.Pattern[str], count: int | None = None,
                       last_until: re.Pattern[str] | None = None) -> list[Assignment]:
    """``A=1 B=two words C="x"`` -> assignments; a value runs until the next ``NAME=``."""
    starts = list(starter.finditer(text))
    if count is not None:
        starts = starts[:count]
    out: list[Assignment] = []
    for i, m in enumerate(starts):
        vstart = m.end()
        if i + 1 < len(starts):
            vend = starts[i + 1].start()
        elif last_until is not None:
            stop = last_until.search(text, vstart)
            vend = stop.start() if stop else len(text)
        else:
            vend = len(text)
        value = text[vstart:vend].rstrip()
        vend = vstart + len(value)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
            vstart, vend = vstart + 1, vend - 1
        out.append(Assignment(m.group(1), value, base + vstart, base + vend))
    return out


def parse_created_by(created_by: str) -> ParsedHistory:
    text = created_by
    buildkit = text.rstrip().endswith("# buildkit")
    pos = 0
    instruction = ""
    first = text.split(None, 1)[0] if text.strip() else ""
    if first in _INSTRUCTIONS and first != "RUN" and not text.startswith("/"):
        # BuildKit: "ENV A=b", "LABEL k=v", "ARG X", "COPY ... # buildkit"
        instruction = first
        pos = len(text) - len(text[len(first):].lstrip()) if text[len(first):].strip() else len(text)
        return _finish(text, instruction, pos, (), None, buildkit)
    if first == "RUN":
        instruction = "RUN"
        pos = len(text) - len(text[3:].lstrip())
    build_args: list[Assignment] = []
    args_span = None
    m = _ARGS_PREFIX.match(text, pos)
    if m:
        n = int(m.group(1))
        rest_start = m.end()
        stop = _SHELL_START.search(text, rest_start)
        region_end = len(text) if stop is None else stop.start()
        # values may contain spaces: a value runs to the next NAME= (or, for the last, the shell)
        region = text[rest_start:region_end]
        build_args = _split_assignments(region, rest_start, _ASSIGN_START, n)
        if len(build_args) < n and stop is not None:
            # a value with " /" in it: take the whole line up to the shell word
            pass
        args_span = (m.start(), region_end)
        pos = region_end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    sh = _SHELL_PREFIX.match(text, pos)
    if sh:
        pos = sh.end()
        nop = _NOP.match(text, pos)
        if nop:
            body = text[nop.end():]
            word = body.split(None, 1)[0] if body.strip() else ""
            instruction = word.upper() if word.upper() in _INSTRUCTIONS else "NOP"
            pos = nop.end() + len(word)
            while pos < len(text) and text[pos].isspace():
                pos += 1
            return _finish(text, instruction, pos, tuple(build_args), args_span, buildkit)
        instruction = "RUN"
    return _finish(text, instruction or "RUN", pos, tuple(build_args), args_span, buildkit)


def _finish(text: str, instruction: str, pos: int, build_args: tuple[Assignment, ...],
            args_span: tuple[int, int] | None, buildkit: bool) -> ParsedHistory:
    assignments: tuple[Assignment, ...] = ()
    body = text[pos:]
    if buildkit and body.rstrip().endswith("# buildkit"):
        body = body.rstrip()[: -len("# buildkit")].rstrip()
    if instruction == "ENV":
        assignments = tuple(_split_assignments(body, pos, _ASSIGN_START))
        if not assignments and body.strip():  # legacy "ENV A b" form
            parts = body.strip().split(None, 1)
            if len(parts) == 2:
                start = text.find(parts[1], pos)
                assignments = (Assignment(parts[0], parts[1], start, start + len(parts[1])),)
    elif instruction == "LABEL":
        assignments = tuple(_split_assignments(body, pos, _KV_START))
    elif instruction == "ARG":
        assignments = tuple(a for a in _split_assignments(body, pos, _ASSIGN_START))
    return ParsedHistory(instruction, build_args, args_span, assignments, pos, buildkit)


def instruction(created_by: str) -> tuple[str, str]:
    """(keyword, readable text) of a history ``created_by``, for legacy and BuildKit histories.

    The parsing is :func:`parse_created_by` (build-arg prefixes, shells, ``#(nop)``, ``# buildkit``); the
    build args themselves are left out of the readable text.
    """
    if not created_by.strip():
        return "", ""
    parsed = parse_created_by(created_by)
    body = created_by[parsed.body_start:].rstrip()
    if parsed.buildkit and body.endswith("# buildkit"):
        body = body[: -len("# buildkit")].rstrip()
    keyword = "" if parsed.instruction == "NOP" else parsed.instruction
    return keyword, f"{keyword} {body}".strip() if keyword else body
