"""Property tests of the one identifier grammar (trustload.identifiers): a valid
identifier plus any newline or control character is never valid, and every string the
pattern describes is accepted (the JSON-Schema form describes the same language)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustload.errors import UsageError
from trustload.facts import ModelRef
from trustload.identifiers import Kind, has_control, is_valid, json_pattern, parse_decimal

KINDS = list(Kind)
CONTROL = st.characters(categories=("Cc", "Zl", "Zp"))


def valid(kind: Kind) -> st.SearchStrategy[str]:
    return st.from_regex(re.compile(kind.value, re.ASCII), fullmatch=True)


@settings(max_examples=300)
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_generated_identifiers_are_accepted(data: st.DataObject, kind: Kind) -> None:
    value = data.draw(valid(kind))
    assert kind.accepts(value) and is_valid(kind, value)
    # The OpenAPI form (ECMA-262 search semantics) describes the same language.
    assert re.search(json_pattern(kind).replace("$", r"\Z"), value)


@settings(max_examples=500)
@given(
    data=st.data(),
    kind=st.sampled_from(KINDS),
    where=st.sampled_from(["end", "start", "middle"]),
    bad=CONTROL,
)
def test_a_control_character_anywhere_is_refused(
    data: st.DataObject, kind: Kind, where: str, bad: str
) -> None:
    value = data.draw(valid(kind))
    cut = len(value) // 2
    tainted = {"end": value + bad, "start": bad + value, "middle": value[:cut] + bad + value[cut:]}
    assert not kind.accepts(tainted[where])
    assert has_control(tainted[where])


@pytest.mark.parametrize("kind", KINDS)
def test_trailing_newline_is_refused_where_match_with_dollar_accepted_it(kind: Kind) -> None:
    sample = {"HEX": "ab", "HEX64": "a" * 64, "DIGEST": "sha256:" + "a" * 64, "DECIMAL": "7"}.get(
        kind.name, "risk"
    )
    assert kind.accepts(sample)
    # The old idiom: re.match with ^...$ lets the newline through.
    assert re.match(json_pattern(kind), sample + "\n") is not None
    assert not kind.accepts(sample + "\n")


@given(st.text(max_size=200))
def test_acceptance_is_exactly_the_ascii_pattern(text: str) -> None:
    for kind in KINDS:
        assert kind.accepts(text) == (re.fullmatch(kind.value, text, re.ASCII) is not None)
        if kind.accepts(text):
            assert all(ord(c) < 128 and not unicodedata.category(c).startswith("C") for c in text)


def test_non_strings_are_never_identifiers() -> None:
    for kind in KINDS:
        for value in (None, 1, b"risk", ["risk"], {"risk": 1}):
            assert not kind.accepts(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), None),
        ("", None),
        ("²", None),
        ("١", None),
        ("-1", None),
        ("1\n", None),
        (" 1", None),
        (None, None),
    ],
)
def test_parse_decimal_takes_only_ascii_digits_within_int64(
    text: str | None, expected: int | None
) -> None:
    assert parse_decimal(text) == expected


@given(name=valid(Kind.NAME), ref=valid(Kind.NAME), bad=CONTROL)
def test_model_refs_with_control_characters_are_usage_errors(name: str, ref: str, bad: str) -> None:
    assert ModelRef.parse(f"{name}@{ref}") == ModelRef(name, ref)
    for text in (f"{name}{bad}@{ref}", f"{name}@{ref}{bad}"):
        with pytest.raises(UsageError):
            ModelRef.parse(text)
