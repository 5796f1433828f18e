"""``parses_as_pae``: exactly the byte strings some PAE(type, body) produces (property test)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trustload.formats.dsse import bytes_parse_as_pae, pae


@given(st.text(max_size=300), st.binary(max_size=2000))
def test_every_pae_is_recognised(payload_type: str, body: bytes) -> None:
    assert bytes_parse_as_pae(pae(payload_type, body))


@given(st.text(max_size=50), st.binary(max_size=200), st.binary(min_size=1, max_size=8))
def test_extra_or_missing_bytes_are_not_a_pae(payload_type: str, body: bytes, junk: bytes) -> None:
    whole = pae(payload_type, body)
    assert not bytes_parse_as_pae(whole + junk)
    assert not bytes_parse_as_pae(whole[:-1])


def test_near_misses() -> None:
    for data in (
        b"",
        b"DSSEv1",
        b"DSSEv1 ",
        b"DSSEv1 x abc 0 ",
        b"DSSEv1 03 abc 0 ",  # leading zero: not what PAE writes
        b"DSSEv1 3 abc 00 ",
        b"DSSEv1 3 abcd 0 ",
        b"DSSEv1 -3 abc 0 ",
        b"dssev1 3 abc 0 ",
        b" DSSEv1 3 abc 0 ",
    ):
        assert not bytes_parse_as_pae(data), data
    assert bytes_parse_as_pae(b"DSSEv1 3 abc 0 ")
    assert bytes_parse_as_pae(b"DSSEv1 0  5 hello")
