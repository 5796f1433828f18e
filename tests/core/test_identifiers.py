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
from trustload.identifiers import (
    BLANK_CHARS,
    Kind,
    has_control,
    is_valid,
    json_pattern,
    nonblank_pattern,
    parse_decimal,
    strip_blank,
)

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


# ECMA 262 WhiteSpace and LineTerminator (what a JSON Schema validator's \s means).
ECMA_BLANK = set("\t\v\f \u00a0\ufeff\n\r\u2028\u2029") | {
    chr(c) for c in range(0x10000) if unicodedata.category(chr(c)) == "Zs"
}


def test_blank_set_covers_every_engines_whitespace() -> None:
    """Python's str.isspace (the server's old strip), ECMA 262's \\s (schemathesis and
    other JSON Schema validators) and Rust regex's \\s (pydantic-core) all count as blank."""
    python_blank = {chr(c) for c in range(0x10000) if chr(c).isspace()}
    # Unicode White_Space, Rust regex's \s (pydantic-core's default regex engine)
    rust_blank = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {
        chr(c) for c in range(0x2000, 0x200B)
    }
    assert python_blank <= set(BLANK_CHARS)
    assert set(BLANK_CHARS) >= ECMA_BLANK
    assert rust_blank <= set(BLANK_CHARS)


@given(st.text(alphabet=st.sampled_from(BLANK_CHARS) | st.characters(), max_size=12))
def test_served_pattern_accepts_exactly_what_the_server_keeps(text: str) -> None:
    # The pattern names every code point with a \uXXXX escape, so ECMA 262, Python and
    # Rust regex read it the same way; Python's re stands for all three here.
    assert (re.search(nonblank_pattern(), text) is not None) == bool(strip_blank(text))


def test_nel_and_bom_alone_are_blank() -> None:
    for text in ("\u0085", "\ufeff", " \u3000\t", "\x1c"):
        assert strip_blank(text) == "" and re.search(nonblank_pattern(), text) is None
    assert strip_blank("\u0085CVE-1\ufeff") == "CVE-1"
