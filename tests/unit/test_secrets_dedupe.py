"""``dedupe`` and ``Redactor`` keep their meaning now that they are no longer quadratic (issue 16: 11):
compared, on generated inputs, with the straightforward definitions they replaced."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bilge.secrets.mask import Redactor
from bilge.secrets.textscan import Hit, dedupe
from bilge.severity import RANK as _RANKS  # the one ladder (issue 11)


def reference_dedupe(hits):
    ordered = sorted(hits, key=lambda h: (h.named, -_RANKS.get(h.severity, 0), h.start))
    kept = []
    for h in ordered:
        if any(h.start < k.end and k.start < h.end for k in kept):
            continue
        kept.append(h)
    kept.sort(key=lambda h: h.start)
    return kept


hits = st.lists(st.builds(
    lambda s, n, sev, named: Hit("r", "t", sev, "x", s, s + n, named=named),
    st.integers(0, 200), st.integers(1, 30), st.sampled_from(list(_RANKS)), st.booleans()), max_size=60)


@settings(max_examples=300, deadline=None)
@given(hits)
def test_dedupe_matches_the_pairwise_definition(hs):
    assert dedupe(hs) == reference_dedupe(hs)


def reference_redact(text, values):
    for secret, masked in sorted(values, key=lambda p: -len(p[0])):
        if secret and secret in text:
            text = text.replace(secret, masked)
    return text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text("abcdefgh", min_size=3, max_size=8), min_size=1, max_size=30, unique=True),
       st.lists(st.integers(0, 29), max_size=40))
def test_redactor_masks_like_sequential_replace_for_disjoint_secrets(secrets, picks):
    # secrets that share no characters with the mask and do not overlap each other in the text
    text = "|".join(secrets[i % len(secrets)] for i in picks)
    values = [(s, f"<{n}>") for n, s in enumerate(secrets)]
    got = Redactor(values)(text)
    assert not any(s in got.replace("<", "|").replace(">", "|").split("|") for s in secrets if s in text.split("|"))
    if all(a == b or (a not in b and b not in a) for a in secrets for b in secrets):
        assert got == reference_redact(text, values)


def test_many_secrets_in_one_text():
    values = [(f"tok{i:05d}x", "*") for i in range(5000)]
    text = " ".join(s for s, _ in values)
    assert Redactor(values)(text) == " ".join("*" for _ in values)
