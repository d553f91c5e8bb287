"""Anchored rules (tried only where their keyword occurs) find exactly what a full search finds.

The reference is ``regex.finditer`` over the whole buffer, the way every rule ran before; the inputs
are every rule's true positive and near miss from test_secrets_rules, and random text with the
rules' keywords, boundaries and alphabets mixed in.
"""

from __future__ import annotations

import random
import re
import string

import pytest

from bilge.secrets.anchors import anchored, finditer_at
from bilge.secrets.rules import load_ruleset
from bilge.secrets.textscan import FILE_CONFIG, Scanner, _run_rule
from tests.unit.test_secrets_rules import CASES

RULESET = load_ruleset()
SCANNER = Scanner(RULESET)
RNG = random.Random(121212)


def full(rule, buf: bytes) -> list[tuple[int, int, str, str]]:
    return [(h.start, h.end, h.severity, h.note) for h in _run_rule(rule, buf, False, RULESET.names)]


def at_keywords(rule, buf: bytes) -> list[tuple[int, int, str, str]]:
    low = buf.lower()
    starts = sorted({m.start() for kw in rule.keywords for m in re.finditer(re.escape(kw), low)})
    return [(h.start, h.end, h.severity, h.note) for h in _run_rule(rule, buf, False, RULESET.names, starts)]


def test_which_rules_are_anchored():
    got = {r.id for r in RULESET.rules if anchored(r.regex, r.keywords)}
    # literal prefixes, case-insensitive ones and branches of them
    assert {"github-pat", "npm-token", "pypi-token", "heroku-api-key", "authorization-header",
            "twilio-auth-token", "azure-ad-client-secret", "basic-auth-url", "jwt"} <= got
    # a character class or a keyword in the middle: searched in full
    assert not {"stripe-secret-key", "mailchimp-api-key", "private-key", "slack-token"} & got


def test_anchoring_is_conservative_on_hand_made_patterns():
    assert anchored(re.compile(rb"abc[0-9]+"), [b"abc"])
    assert anchored(re.compile(rb"(?i:ABC)d"), [b"abc"])
    assert anchored(re.compile(rb"(?:abc|xyz)1"), [b"abc", b"xyz"])
    assert not anchored(re.compile(rb"(?:abc|xyz)1"), [b"abc"])  # one branch without a keyword
    assert not anchored(re.compile(rb"[ab]bc"), [b"bc"])
    assert not anchored(re.compile(rb"x?abc"), [b"abc"])
    assert not anchored(re.compile(rb"(?=a)abc"), [b"abc"])
    assert not anchored(re.compile(rb"ab"), [b"abc"])  # the keyword is longer than the literal


ANCHORED = sorted(r.id for r in RULESET.rules if anchored(r.regex, r.keywords) and r.id in CASES)


@pytest.mark.parametrize("rule_id", ANCHORED)
def test_anchored_search_equals_full_search_on_rule_cases(rule_id):
    rule = RULESET.get(rule_id)
    text, _secret, near = CASES[rule_id]()
    buf = (f"x {text}\n{near}\n{text}{text} ;{text.upper()}\n").encode()
    assert at_keywords(rule, buf) == full(rule, buf)


def test_anchored_search_equals_full_search_on_random_text():
    rules = [r for r in RULESET.rules if anchored(r.regex, r.keywords)]
    alphabet = string.ascii_letters + string.digits + "_-.:/=@ \n\"'~"
    pieces = [kw.decode() for r in rules for kw in r.keywords] + [CASES[r.id]()[0] for r in rules if r.id in CASES]
    for _ in range(300):
        parts = []
        for _ in range(RNG.randint(1, 12)):
            parts.append("".join(RNG.choice(alphabet) for _ in range(RNG.randint(0, 40))))
            piece = RNG.choice(pieces)
            parts.append(piece.upper() if RNG.random() < 0.2 else piece)
        buf = "".join(parts).encode()
        for rule in rules:
            assert at_keywords(rule, buf) == full(rule, buf), (rule.id, buf)


def test_scanner_uses_keyword_offsets_and_finds_the_same_hits():
    plain = Scanner(RULESET, use_accelerator=False)  # no offsets: every rule searched in full
    text = "\n".join(CASES[k]()[0] for k in sorted(CASES)).encode()
    got = [(h.rule_id, h.start, h.end, h.severity) for h in SCANNER.scan(text, FILE_CONFIG)]
    assert got == [(h.rule_id, h.start, h.end, h.severity) for h in plain.scan(text, FILE_CONFIG)]
    assert len(got) >= len(CASES) - 3


def test_finditer_at_does_not_overlap_matches():
    rx = re.compile(rb"ab[ab]*")
    buf = b"abab xab ab"
    starts = [m.start() for m in re.finditer(rb"ab", buf)]
    assert [m.span() for m in finditer_at(rx, buf, starts)] == [m.span() for m in rx.finditer(buf)]


# the two rules rewritten to start with a literal (mailchimp at "-us", azure-ad at "Q~"): the same
# values as the old patterns, which began with a character class
OLD = {
    "mailchimp-api-key": rb"(?P<secret>[0-9a-f](?<![A-Za-z0-9][0-9a-f])[0-9a-f]{31}-us[0-9]{1,2})(?![A-Za-z0-9])",
    "azure-ad-client-secret": rb"(?P<secret>[A-Za-z0-9_~.](?<![A-Za-z0-9_~.-][A-Za-z0-9_~.])[A-Za-z0-9_~.]{2}[0-9]Q~"
                              rb"[A-Za-z0-9_~.-]{31,34})(?![A-Za-z0-9_~.-])",
}


@pytest.mark.parametrize("rule_id", sorted(OLD))
def test_rewritten_rules_match_what_the_old_patterns_matched(rule_id):
    rule = RULESET.get(rule_id)
    old = re.compile(OLD[rule_id])
    alphabet = "0123456789abcdefABQ~-_.us "
    text, secret, near = CASES[rule_id]()
    for i in range(400):
        noise = [
            "".join(RNG.choice(alphabet) for _ in range(RNG.randint(0, 50))) for _ in range(4)]
        buf = (noise[0] + text + noise[1] + near + noise[2] + (secret if i % 2 else "") + noise[3]).encode()
        want = [m.span("secret") for m in old.finditer(buf)]
        assert [(h.start, h.end) for h in _run_rule(rule, buf, False, RULESET.names)] == want, buf


def test_third_party_scan_searches_rule_keywords_only_and_finds_the_same_format_hits():
    """In third-party code (library=True) no name rule runs, so the pre-filter leaves out their
    keywords ("key", "pass" ...); the format rules' hits are those of the full pre-filter."""
    text = ("password = 'Zx9!kLm2pQ7r'\napi_key: 'h3Kd92kLx0Qm1Zp8'\n"
            + "\n".join(CASES[k]()[0] for k in sorted(CASES))).encode()
    lib = SCANNER.scan(text, FILE_CONFIG, library=True)
    app = SCANNER.scan(text, FILE_CONFIG, library=False)
    assert not any(h.named for h in lib) and any(h.named for h in app)
    assert [(h.rule_id, h.start, h.end) for h in lib] == [(h.rule_id, h.start, h.end) for h in app if not h.named]
    assert len(SCANNER._rules_index.keywords) < len(SCANNER.index.keywords)
