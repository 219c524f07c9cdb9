"""ONNX models built with `onnx.helper` that both the tests and the benchmarks run (no torch,
milliseconds to build)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def matmul_chain(directory: Path, *, width: int = 256, depth: int = 24, name: str = "slow") -> Path:
    """x FP32 [-1, width] → y: `depth` chained MatMuls with one shared weight (2·width² FLOP a
    sample per MatMul). Light, it is a one-input model every peer server can serve; heavy, it
    keeps requests in flight long enough to drain or overload a server. Writes and returns
    `<directory>/<name>.onnx`."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    nodes, last = [], "x"
    for i in range(depth):
        out = "y" if i == depth - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [last, "w"], [out]))
        last = out
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(directory) / f"{name}.onnx"
    onnx.save(model, str(path))
    return path
