"""Hypothesis strategies for hostile OIP v2 inference requests (parser and app tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

DATATYPES = ["FP32", "FP64", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "fp32", ""]

dims = st.one_of(
    st.integers(min_value=-3, max_value=70),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63)]),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
data = st.one_of(
    st.lists(scalars, max_size=80),
    st.lists(st.lists(scalars, max_size=4), max_size=20),
    st.lists(st.floats(width=32, allow_nan=False), max_size=80),
)
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "flag", "y"]),
        "shape": st.lists(dims, max_size=10),
        "datatype": st.sampled_from(DATATYPES),
    },
    optional={"data": data, "parameters": st.dictionaries(st.text(max_size=4), scalars)},
)
requests = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, max_size=3)},
    optional={
        "id": st.one_of(st.text(max_size=5), st.integers()),
        "outputs": st.lists(st.fixed_dictionaries({"name": st.text(max_size=5)}), max_size=2),
    },
)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """Both inputs with the right names and types, shapes mostly small and honest, so the
    deep paths (counts, data conversion, reshape) are reached; one field may be hostile."""
    rows = draw(st.integers(min_value=0, max_value=6))
    x_shape: list[Any] = [rows, 2]
    flag_shape: list[Any] = [rows]
    x_data: Any = draw(
        st.lists(st.floats(width=32, allow_nan=False), min_size=2 * rows, max_size=2 * rows)
    )
    flag_data: Any = draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
    hostile = draw(st.sampled_from(["none", "x_shape", "flag_shape", "x_data", "flag_data"]))
    if hostile == "x_shape":
        x_shape[draw(st.integers(0, 1))] = draw(dims)
    elif hostile == "flag_shape":
        flag_shape = draw(st.lists(dims, max_size=3))
    elif hostile == "x_data":
        x_data = draw(data)
    elif hostile == "flag_data":
        flag_data = draw(data)
    return {
        "inputs": [
            {"name": "x", "shape": x_shape, "datatype": "FP32", "data": x_data},
            {"name": "flag", "shape": flag_shape, "datatype": "BOOL", "data": flag_data},
        ]
    }
