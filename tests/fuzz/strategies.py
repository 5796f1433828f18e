"""Shared hypothesis strategies and the CI time budget for tests/fuzz (about a minute)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)
FUZZ_NET = settings(FUZZ, max_examples=60)  # one real HTTPS request per example

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)

hexes = st.text("0123456789abcdef", min_size=0, max_size=70)
digests = st.one_of(hexes.map(lambda h: f"sha256:{h}"), st.text(max_size=80))


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """1-4 random edits (flip, insert, delete, truncate) of genuine bytes."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if not out:
            out += b"{"
        i = draw(st.integers(0, len(out) - 1))
        if kind == "flip":
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[i : i + draw(st.integers(1, 16))]
        else:
            del out[i:]
    return bytes(out)
