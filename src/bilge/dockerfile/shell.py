"""A small reader for the POSIX shell scripts of RUN instructions.

Not a shell: enough of one to find the simple commands a RUN runs, their arguments, the variables they
name, their redirections and heredocs. It understands quoting (single, double, backslash), ``$VAR``,
``${VAR...}``, ``$(...)`` and backticks (kept literally, their bodies parsed as nested scripts),
``&&``, ``||``, ``;``, ``|``, ``&``, newlines, subshells and braces, ``if``/``for``/``while``/``case``
keywords, comments, line continuations and ``<<EOF`` heredocs. Wrappers such as ``sh -c '...'``,
``env A=b cmd``, ``gosu user cmd`` and ``xargs cmd`` are unwrapped. It never raises on odd input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\+?=)(.*)$", re.S)
_OPERATORS = ("&&", "||", ";;", ">>", "<<<", "<<-", "<<", ">&", "<&", "&>>", "&>", ">|", "|&",
              ";", "|", "&", "(", ")", ">", "<")
_SEPARATORS = frozenset({"&&", "||", ";;", ";", "|", "|&", "&", "(", ")", "\n"})
_REDIRECTS = frozenset({">>", "<<<", "<<-", "<<", ">&", "<&", "&>>", "&>", ">|", ">", "<"})
_RESERVED = frozenset({"!", "{", "}", "then", "do", "else", "elif", "if", "while", "until", "time", "fi",
                       "done"})
_WRAPPERS_PLAIN = frozenset({"nice", "nohup", "command", "exec", "eatmydata", "builtin", "time",
                             "timeout", "stdbuf", "chroot", "unbuffer"})


@dataclass(frozen=True)
class Word:
    raw: str  # as written, quotes included
    text: str  # quotes removed; $VAR, ${VAR...}, $(...) and `...` kept literally
    vars: tuple[str, ...] = ()  # names of the variables the word references
    subs: tuple[str, ...] = ()  # bodies of command substitutions
    quoted: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Redirect:
    op: str
    fd: str | None
    target: Word | None
    body: str | None = None  # heredoc body


@dataclass(frozen=True)
class Command:
    """One simple command: ``A=1 B=2 prog arg ... > file``."""

    argv: tuple[Word, ...]
    assigns: tuple[tuple[str, Word], ...] = ()
    redirects: tuple[Redirect, ...] = ()
    sep: str = ""  # the operator after it: "&&", "||", ";", "|", "&", "\n", ""
    piped: bool = False  # its stdin comes from the previous command's pipe
    depth: int = 0  # 0 at top level, +1 inside $(...) or sh -c '...'

    @property
    def name(self) -> str:
        return self.argv[0].text if self.argv else ""

    @property
    def args(self) -> list[str]:
        return [w.text for w in self.argv[1:]]

    @property
    def vars(self) -> set[str]:
        out: set[str] = set()
        for w in self.argv:
            out.update(w.vars)
        for _, w in self.assigns:
            out.update(w.vars)
        for r in self.redirects:
            if r.target:
                out.update(r.target.vars)
            if r.body:
                out.update(_vars_in(r.body))
        return out

    def __str__(self) -> str:
        parts = [f"{k}={v.raw}" for k, v in self.assigns] + [w.raw for w in self.argv]
        parts += [f"{r.fd or ''}{r.op} {r.target.raw if r.target else ''}".strip() for r in self.redirects]
        return " ".join(parts)


def _vars_in(text: str) -> set[str]:
    out: set[str] = set()
    for m in re.finditer(r"\$\{#?([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)", text):
        out.add(m.group(1) or m.group(2))
    return out


class _Reader:
    def __init__(self, src: str) -> None:
        self.s = src
        self.i = 0
        self.n = len(src)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < self.n else ""

    # -- pieces inside words ------------------------------------------------------------------------------
    def balanced(self, open_: str, close: str) -> str:
        """Read after an opening ``open_`` up to the matching ``close``; returns the body."""
        depth = 1
        start = self.i
        while self.i < self.n:
            c = self.s[self.i]
            if c == "\\":
                self.i += 2
                continue
            if c == "'" and open_ == "(":
                end = self.s.find("'", self.i + 1)
                self.i = self.n if end < 0 else end + 1
                continue
            if c == '"':
                self.i += 1
                self.dquote_body()
                continue
            if c == open_:
                depth += 1
            elif c == close:
                depth -= 1
                if depth == 0:
                    body = self.s[start:self.i]
                    self.i += 1
                    return body
            self.i += 1
        return self.s[start:]

    def dquote_body(self) -> tuple[str, list[str], list[str]]:
        """Read the inside of a double-quoted string (the opening quote already consumed)."""
        text: list[str] = []
        names: list[str] = []
        subs: list[str] = []
        while self.i < self.n:
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                break
            if c == "\\" and self.peek(1) in ('"', "\\", "$", "`", "\n"):
                if self.peek(1) != "\n":
                    text.append(self.peek(1))
                self.i += 2
                continue
            if c == "$":
                piece, name, sub = self.dollar()
                text.append(piece)
                if name:
                    names.append(name)
                if sub is not None:
                    subs.append(sub)
                continue
            if c == "`":
                self.i += 1
                body = self.backtick()
                subs.append(body)
                text.append(f"`{body}`")
                continue
            text.append(c)
            self.i += 1
        return "".join(text), names, subs

    def backtick(self) -> str:
        start = self.i
        while self.i < self.n and self.s[self.i] != "`":
            self.i += 2 if self.s[self.i] == "\\" else 1
        body = self.s[start:self.i]
        self.i += 1
        return body.replace("\\`", "`")

    def dollar(self) -> tuple[str, str | None, str | None]:
        """At a ``$``: returns (literal text, variable name or None, substitution body or None)."""
        nxt = self.peek(1)
        if nxt == "(":
            self.i += 2
            if self.peek() == "(":  # $(( arithmetic ))
                self.i += 1
                body = self.balanced("(", ")")
                if self.peek() == ")":
                    self.i += 1
                return f"$(({body}))", None, None
            body = self.balanced("(", ")")
            return f"$({body})", None, body
        if nxt == "{":
            self.i += 2
            body = self.balanced("{", "}")
            m = _NAME.match(body.lstrip("#!"))
            return "${" + body + "}", (m.group(0) if m else None), None
        m = _NAME.match(self.s, self.i + 1)
        if m:
            self.i = m.end()
            return "$" + m.group(0), m.group(0), None
        if nxt and (nxt.isdigit() or nxt in "@*#?$!-"):
            self.i += 2
            return "$" + nxt, None, None
        self.i += 1
        return "$", None, None

    # -- tokens -------------------------------------------------------------------------------------------
    def word(self) -> Word:
        start = self.i
        text: list[str] = []
        names: list[str] = []
        subs: list[str] = []
        quoted = False
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t\r\n;&|()<>":
                break
            if c == "\\":
                if self.peek(1) == "\n":
                    self.i += 2
                    continue
                text.append(self.peek(1))
                self.i += 2
                continue
            if c == "'":
                quoted = True
                end = self.s.find("'", self.i + 1)
                end = self.n if end < 0 else end
                text.append(self.s[self.i + 1:end])
                self.i = end + 1
                continue
            if c == '"':
                quoted = True
                self.i += 1
                t, ns, ss = self.dquote_body()
                text.append(t)
                names += ns
                subs += ss
                continue
            if c == "$":
                piece, name, sub = self.dollar()
                text.append(piece)
                if name:
                    names.append(name)
                if sub is not None:
                    subs.append(sub)
                continue
            if c == "`":
                self.i += 1
                body = self.backtick()
                subs.append(body)
                text.append(f"`{body}`")
                continue
            text.append(c)
            self.i += 1
        return Word(self.s[start:self.i], "".join(text), tuple(names), tuple(subs), quoted)

    def heredoc_body(self, delim: str, strip_tabs: bool) -> str:
        lines: list[str] = []
        while self.i < self.n:
            end = self.s.find("\n", self.i)
            end = self.n if end < 0 else end
            line = self.s[self.i:end]
            self.i = min(end + 1, self.n)
            check = line.lstrip("\t") if strip_tabs else line
            if check.rstrip("\r") == delim:
                break
            lines.append(check if strip_tabs else line)
        return "\n".join(lines) + ("\n" if lines else "")


def _tokens(src: str) -> list[tuple[str, object]]:
    r = _Reader(src)
    out: list[tuple[str, object]] = []
    pending: list[tuple[int, str, bool]] = []  # (token index of the delimiter word, delimiter, strip tabs)
    while r.i < r.n:
        c = r.s[r.i]
        if c in " \t\r":
            r.i += 1
            continue
        if c == "\\" and r.peek(1) == "\n":
            r.i += 2
            continue
        if c == "#":  # at a token boundary: a comment
            end = r.s.find("\n", r.i)
            r.i = r.n if end < 0 else end
            continue
        if c == "\n":
            out.append(("op", "\n"))
            r.i += 1
            for idx, delim, strip in pending:
                body = r.heredoc_body(delim, strip)
                kind, w = out[idx]
                out[idx] = ("heredoc", (w, body))
            pending.clear()
            continue
        op = next((o for o in _OPERATORS if r.s.startswith(o, r.i)), None)
        if op:
            r.i += len(op)
            out.append(("op", op))
            if op in ("<<", "<<-"):
                while r.peek() in (" ", "\t"):
                    r.i += 1
                w = r.word()
                out.append(("word", w))
                pending.append((len(out) - 1, w.text, op == "<<-"))
            continue
        w = r.word()
        if not w.raw:  # defensive: never loop forever
            r.i += 1
            continue
        if w.raw.isdigit() and r.peek() in ("<", ">"):
            out.append(("fd", w.raw))
        else:
            out.append(("word", w))
    for idx, _delim, _strip in pending:  # heredoc without a body before the end of the script
        kind, w = out[idx]
        out[idx] = ("heredoc", (w, ""))
    return out


def parse_script(src: str, depth: int = 0) -> list[Command]:
    """Every simple command of a shell script, in order, nested ones right after their parent."""
    if depth > 4:
        return []
    toks = _tokens(src)
    raw_cmds: list[tuple[list[Word], list[Redirect], str]] = []
    words: list[Word] = []
    redirs: list[Redirect] = []
    fd: str | None = None
    i = 0
    while i < len(toks):
        kind, val = toks[i]
        if kind == "word":
            words.append(val)  # type: ignore[arg-type]
        elif kind == "fd":
            fd = val  # type: ignore[assignment]
        elif kind == "op" and val in _REDIRECTS:
            target: Word | None = None
            body: str | None = None
            if i + 1 < len(toks) and toks[i + 1][0] in ("word", "heredoc"):
                nk, nv = toks[i + 1]
                if nk == "heredoc":
                    target, body = nv  # type: ignore[misc]
                else:
                    target = nv  # type: ignore[assignment]
                i += 1
            redirs.append(Redirect(str(val), fd, target, body))
            fd = None
        elif kind == "op":
            raw_cmds.append((words, redirs, str(val)))
            words, redirs = [], []
        i += 1
    if words or redirs:
        raw_cmds.append((words, redirs, ""))

    out: list[Command] = []
    in_case = 0
    expect_pattern = False
    prev_sep = ""
    for words, redirs, sep in raw_cmds:
        piped = prev_sep in ("|", "|&")
        prev_sep = sep
        # strip reserved words at the front
        while words and not words[0].quoted and words[0].text in _RESERVED:
            words = words[1:]
        if words and not words[0].quoted and words[0].text == "case":
            in_case += 1
            expect_pattern = True
            continue
        if in_case and words and not words[0].quoted and words[0].text == "esac":
            in_case -= 1
            continue
        if in_case and expect_pattern and sep == ")":
            expect_pattern = False
            continue
        if in_case and sep == ";;":
            expect_pattern = True
        if words and not words[0].quoted and words[0].text in ("for", "select"):
            continue
        if words and words[0].text in ("in",) and in_case:
            continue
        assigns: list[tuple[str, Word]] = []
        while words:
            m = _ASSIGN.match(words[0].raw)
            if not m:
                break
            w0 = words[0]
            value = w0.text.split("=", 1)[1] if "=" in w0.text else ""
            assigns.append((m.group(1), Word(m.group(3), value, w0.vars, w0.subs, w0.quoted)))
            words = words[1:]
        if not words and not assigns and not redirs:
            continue
        cmd = Command(tuple(words), tuple(assigns), tuple(redirs), sep, piped, depth)
        out.append(cmd)
        # nested scripts: command substitutions, heredocs fed to a shell, sh -c '...'
        for w in (*cmd.argv, *(v for _, v in cmd.assigns), *(r.target for r in cmd.redirects if r.target)):
            for sub in w.subs:
                out.extend(parse_script(sub, depth + 1))
        out.extend(_unwrap(cmd, depth))
    return out


_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "/bin/sh", "/bin/bash", "/usr/bin/bash", "/bin/ash",
                     "/bin/dash", "/usr/bin/env"})


MAX_WRAPPERS = 64
"""Wrapper words (``env``, ``sudo``, ``nice`` ...) unwrapped in front of one command; beyond, the rest is not read."""


def _unwrap(cmd: Command, depth: int) -> list[Command]:
    """Commands run by a wrapper: ``sh -c '...'``, ``bash <<EOF``, ``env A=b cmd``, ``gosu u cmd``, ``xargs cmd``.

    A loop, not a recursion: ``nice nice nice ... true`` costs one step per word (at most MAX_WRAPPERS)."""
    out: list[Command] = []
    for _ in range(MAX_WRAPPERS):
        step = _unwrap_one(cmd, depth)
        if not isinstance(step, Command):
            return out + step
        out.append(step)
        cmd = step
    return out


def _unwrap_one(cmd: Command, depth: int) -> list[Command] | Command:
    """One level: the wrapped command (a Command), or the final list of commands a shell runs."""
    if not cmd.argv:
        return []
    name = cmd.argv[0].text
    base = name.rsplit("/", 1)[-1]
    argv = list(cmd.argv[1:])
    if name in _SHELLS or base in ("sh", "bash", "ash", "dash", "zsh"):
        if name == "/usr/bin/env" or base == "env":
            return _rewrap(cmd, argv, depth, env=True)
        for j, w in enumerate(argv):
            if w.text == "-c" or (w.text.startswith("-") and "c" in w.text[1:] and not w.text.startswith("--")):
                if j + 1 < len(argv):
                    return parse_script(argv[j + 1].text, depth + 1)
                return []
        for r in cmd.redirects:
            if r.op in ("<<", "<<-") and r.body is not None:
                return parse_script(r.body, depth + 1)
        return []
    if base == "env":
        return _rewrap(cmd, argv, depth, env=True)
    if base in ("sudo", "doas"):
        while argv and argv[0].text.startswith("-"):
            opt = argv.pop(0).text
            if opt in ("-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U") and argv:
                argv.pop(0)
        return _rewrap(cmd, argv, depth)
    if base in ("gosu", "su-exec"):
        return _rewrap(cmd, argv[1:], depth)
    if base in _WRAPPERS_PLAIN:
        while argv and argv[0].text.startswith("-"):
            argv.pop(0)
        if base == "timeout" and argv:
            argv.pop(0)
        return _rewrap(cmd, argv, depth)
    if base == "xargs":
        while argv and argv[0].text.startswith("-"):
            opt = argv.pop(0).text
            if opt in ("-I", "-n", "-P", "-L", "-d", "-s", "-E", "-a") and argv:
                argv.pop(0)
        return _rewrap(cmd, argv, depth)
    return []


def _rewrap(cmd: Command, argv: list[Word], depth: int, env: bool = False) -> list[Command] | Command:
    assigns: list[tuple[str, Word]] = []
    if env:
        while argv and (argv[0].text.startswith("-") or _ASSIGN.match(argv[0].raw)):
            w = argv.pop(0)
            m = _ASSIGN.match(w.raw)
            if m:
                assigns.append((m.group(1), Word(m.group(3), w.text.split("=", 1)[1], w.vars, w.subs, w.quoted)))
    if not argv:
        return []
    return Command(tuple(argv), tuple(assigns), cmd.redirects, cmd.sep, cmd.piped, depth)


def split_exec_form(args: tuple[str, ...] | list[str]) -> list[Command]:
    """The exec (JSON) form of RUN: one command, unless it is ``["sh", "-c", "..."]``."""
    words = tuple(Word(a, a, (), (), True) for a in args)
    if not words:
        return []
    cmd = Command(words)
    return [cmd, *_unwrap(cmd, 0)]
