"""The RUN shell reader: commands, words, variables, redirections, heredocs, wrappers."""

from __future__ import annotations

from bilge.dockerfile.shell import parse_script, split_exec_form


def names(script: str) -> list[str]:
    return [c.name for c in parse_script(script) if c.argv]


def test_operators_split_commands():
    assert names("a && b || c; d | e & f\ng") == ["a", "b", "c", "d", "e", "f", "g"]
    cmds = parse_script("curl -L x | tar -xz && mv a b")
    assert [c.sep for c in cmds] == ["|", "&&", ""]
    assert cmds[1].piped and not cmds[0].piped


def test_quotes_are_removed_and_kept_together():
    (c,) = parse_script("""echo 'a b' "c $HOME d" e\\ f""")
    assert c.args == ["a b", "c $HOME d", "e f"]
    assert c.argv[2].vars == ("HOME",)


def test_operators_inside_quotes_do_not_split():
    assert names("""echo "a && b; c | d" && true""") == ["echo", "true"]


def test_variables_named_in_all_forms():
    (c,) = parse_script('BUNDLE_GITHUB__COM="$GITHUB_TOKEN:x-oauth-basic" bundle install ${A} ${B:-x} ${#C}')
    assert c.name == "bundle"
    assert c.assigns[0][0] == "BUNDLE_GITHUB__COM"
    assert c.assigns[0][1].text == "$GITHUB_TOKEN:x-oauth-basic"
    assert c.vars == {"GITHUB_TOKEN", "A", "B", "C"}


def test_command_substitution_is_parsed_as_nested_commands():
    cmds = parse_script('X="x-access-token:$(cat /run/secrets/token)" bundle install && echo `date`')
    assert [(c.name, c.depth) for c in cmds] == [("bundle", 0), ("cat", 1), ("echo", 0), ("date", 1)]


def test_line_continuations_and_comments():
    script = "apt-get install -y \\\n  gcc \\\n  make # a comment && not-a-command\nls"
    cmds = parse_script(script)
    assert [c.name for c in cmds] == ["apt-get", "ls"]
    assert cmds[0].args == ["install", "-y", "gcc", "make"]


def test_redirections_with_fd_and_targets():
    (c,) = parse_script("echo tok >> ~/.npmrc 2>/dev/null")
    assert [(r.op, r.fd, r.target.text) for r in c.redirects] == [(">>", None, "~/.npmrc"), (">", "2", "/dev/null")]
    assert c.args == ["tok"]


def test_heredoc_inside_a_script_is_a_body_not_commands():
    script = "cat > /etc/x.conf <<EOF\nrm -rf /\ntoken=$TOKEN\nEOF\napk add --no-cache tzdata\n"
    cmds = parse_script(script)
    assert [c.name for c in cmds] == ["cat", "apk"]
    heredoc = [r for r in cmds[0].redirects if r.op == "<<"][0]
    assert heredoc.body == "rm -rf /\ntoken=$TOKEN\n"
    assert "TOKEN" in cmds[0].vars


def test_keywords_and_case_arms():
    script = ('if [ -n "$x" ]; then apt-get purge -y foo; else true; fi; for f in a b; do rm -f $f; done; '
              'case "$arch" in amd64) A=x64;; arm64) A=arm ;; *) exit 1 ;; esac; echo done')
    assert names(script) == ["[", "apt-get", "true", "rm", "exit", "echo"]


def test_wrappers_are_unwrapped():
    cmds = parse_script("sh -c 'apt-get update && apt-get install -y gcc' && gosu app env A=1 npm ci")
    by = [(c.name, c.depth) for c in cmds]
    assert ("apt-get", 1) in by and by.count(("apt-get", 1)) == 2
    npm = [c for c in cmds if c.name == "npm"][0]
    assert npm.args == ["ci"] and npm.assigns[0][0] == "A"
    xargs = parse_script("find . -name '*.o' | xargs rm -f")
    assert [c.name for c in xargs] == ["find", "xargs", "rm"]


def test_exec_form():
    cmds = split_exec_form(["gem", "install", "bundler"])
    assert [c.name for c in cmds] == ["gem"] and cmds[0].args == ["install", "bundler"]
    cmds = split_exec_form(["/bin/sh", "-c", "apk add --no-cache git && rm -rf /tmp/x"])
    assert [c.name for c in cmds] == ["/bin/sh", "apk", "rm"]
    assert split_exec_form([]) == []


def test_odd_input_never_raises():
    for script in ["'unterminated", '"unterminated $(', "$(", "${", "`", "<<", "a <<EOF", ")))", "&& ||", "\\"]:
        parse_script(script)  # no exception, whatever the result
