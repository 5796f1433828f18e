"""Tiny real ONNX models built at test time with the onnx helper API."""

from __future__ import annotations

from pathlib import Path


def linear_scorer(weights: list[float], bias: float) -> bytes:
    """score = sigmoid(x @ w + b) over a [N, len(weights)] float32 input named ``x``."""
    import onnx
    from onnx import TensorProto, helper

    n = len(weights)
    w = helper.make_tensor("w", TensorProto.FLOAT, [n, 1], weights)
    b = helper.make_tensor("b", TensorProto.FLOAT, [1], [bias])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["score"]),
        ],
        "linear_scorer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_model(path: Path, weights: list[float], bias: float) -> Path:
    path.write_bytes(linear_scorer(weights, bias))
    return path


def string_echo() -> bytes:
    """echo = Identity(s) over a [N] string tensor: a real model with BYTES input and output."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["echo"])],
        "string_echo",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
