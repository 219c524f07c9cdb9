"""Tiny ONNX models built with `onnx.helper` for the service tests (no torch, milliseconds).

Each builder writes `<directory>/<name>.onnx` and returns its path. Reused by the reliability and
benchmark tests: keep the signatures stable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# The chained-MatMul model is shared with the benchmarks (the overload run serves a heavy one).
from benchmarks.harness.models import matmul_chain as slow_model  # noqa: F401

OPSET = 17

# V2 datatype → ONNX element type, for the every-datatype model.
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def _save(graph: onnx.GraphProto, directory: Path, name: str) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(directory) / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _value(name: str, elem: int, shape: list[int | str | None]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def add_model(
    directory: Path, *, offset: float = 0.0, name: str = "add", half: bool = False
) -> Path:
    """x, y FP32 [-1, 4] → sum = x + y + offset (offset tells versions apart).
    `half`: the same graph with FP16 inputs and output, as an fp16 variant would be."""
    elem, dtype = (TensorProto.FLOAT16, np.float16) if half else (TensorProto.FLOAT, np.float32)
    nodes = [
        helper.make_node("Add", ["x", "y"], ["xy"]),
        helper.make_node("Add", ["xy", "c"], ["sum"]),
    ]
    const = numpy_helper.from_array(np.array(offset, dtype=dtype), "c")
    graph = helper.make_graph(
        nodes,
        name,
        [_value("x", elem, ["batch", 4]), _value("y", elem, ["batch", 4])],
        [_value("sum", elem, ["batch", 4])],
        initializer=[const],
    )
    return _save(graph, directory, name)


def add_reference(x: np.ndarray, y: np.ndarray, offset: float = 0.0) -> np.ndarray:
    return x + y + np.float32(offset)


def all_types_model(directory: Path) -> Path:
    """For every V2 datatype D: input `in_D` [-1, 3] → output `out_D` = Identity."""
    nodes, inputs, outputs = [], [], []
    for datatype, elem in ONNX_TYPES.items():
        nodes.append(helper.make_node("Identity", [f"in_{datatype}"], [f"out_{datatype}"]))
        inputs.append(_value(f"in_{datatype}", elem, ["batch", 3]))
        outputs.append(_value(f"out_{datatype}", elem, ["batch", 3]))
    return _save(helper.make_graph(nodes, "all_types", inputs, outputs), directory, "all_types")


def ragged_model(directory: Path) -> Path:
    """x FP32 [-1, -1, 2] padded along time, lengths INT64 [-1] →
    mean FP32 [-1, 2] = the mean over the first `lengths` steps (padding masked out)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["t"], axis=0),  # T, a scalar
        helper.make_node("Range", ["zero", "t", "one"], ["steps"]),  # (T,)
        helper.make_node("Unsqueeze", ["steps", "axis0"], ["steps_row"]),  # (1, T)
        helper.make_node("Unsqueeze", ["lengths", "axis1"], ["len_col"]),  # (B, 1)
        helper.make_node("Less", ["steps_row", "len_col"], ["valid"]),  # (B, T)
        helper.make_node("Cast", ["valid"], ["valid_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["valid_f", "axis2"], ["mask"]),  # (B, T, 1)
        helper.make_node("Mul", ["x", "mask"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=0),  # (B, 2)
        helper.make_node("Cast", ["len_col"], ["len_f"], to=TensorProto.FLOAT),  # (B, 1)
        helper.make_node("Div", ["total", "len_f"], ["mean"]),
    ]
    consts = [
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
    ]
    graph = helper.make_graph(
        nodes,
        "ragged",
        [_value("x", TensorProto.FLOAT, ["batch", "time", 2]),
         _value("lengths", TensorProto.INT64, ["batch"])],
        [_value("mean", TensorProto.FLOAT, ["batch", 2])],
        initializer=consts,
    )  # fmt: skip
    return _save(graph, directory, "ragged")


def faulty_model(directory: Path) -> Path:
    """x FP32 [-1, 4], idx INT64 [-1, 1] → picked = x[i, idx[i]]; an idx outside 0..3 makes
    ONNX Runtime fail at run time (a fault no signature check can see)."""
    graph = helper.make_graph(
        [helper.make_node("GatherElements", ["x", "idx"], ["picked"], axis=1)],
        "faulty",
        [
            _value("x", TensorProto.FLOAT, ["batch", 4]),
            _value("idx", TensorProto.INT64, ["batch", 1]),
        ],
        [_value("picked", TensorProto.FLOAT, ["batch", 1])],
    )
    return _save(graph, directory, "faulty")


def unknown_op_model(directory: Path) -> Path:
    """Valid ONNX, same signature as `add_model`, but using an op no runtime implements:
    ONNX Runtime refuses it when the session is created (and no custom-op library is loaded)."""
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x", "y"], ["sum"], domain="com.example.nothing")],
        "unknown_op",
        [_value(n, TensorProto.FLOAT, ["batch", 4]) for n in ("x", "y")],
        [_value("sum", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", OPSET),
            helper.make_opsetid("com.example.nothing", 1),
        ],
    )
    model.ir_version = 8
    path = Path(directory) / "unknown_op.onnx"
    onnx.save(model, str(path))
    return path


def warmup_failure_model(directory: Path) -> Path:
    """Same signature as `add_model`; the session opens but every run fails (a fixed Reshape
    of a dynamic batch), so the version fails at warm-up, before serving anything."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "y"], ["xy"]),
            helper.make_node("Reshape", ["xy", "three"], ["flat"]),
            helper.make_node("Reshape", ["flat", "back"], ["sum"]),
        ],
        "warmup_failure",
        [_value(n, TensorProto.FLOAT, ["batch", 4]) for n in ("x", "y")],
        [_value("sum", TensorProto.FLOAT, ["batch", 4])],
        initializer=[
            numpy_helper.from_array(np.array([3], dtype=np.int64), "three"),
            numpy_helper.from_array(np.array([-1, 4], dtype=np.int64), "back"),
        ],
    )
    return _save(graph, directory, "warmup_failure")


def classifier_model(
    directory: Path, *, seed: int = 0, name: str = "classifier", slow_depth: int = 0
) -> Path:
    """x FP32 [-1, 4] → logits FP32 [-1, 3] = x @ W + b, W and b drawn from `seed` (two seeds
    give two classifiers that disagree on some inputs). `slow_depth` > 0 adds that many chained
    1024×1024 MatMuls whose result is multiplied by zero and added: the same answers, computed
    slowly (≈ 2 MFLOP a sample per step), for a version that falls behind."""
    rng = np.random.default_rng(seed)
    consts = [
        numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["fast" if slow_depth else "logits"]),
    ]
    if slow_depth:
        width = 1024
        consts += [
            numpy_helper.from_array(rng.standard_normal((4, width)).astype(np.float32), "W_in"),
            numpy_helper.from_array(
                (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), "W_deep"
            ),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ]
        nodes.append(helper.make_node("MatMul", ["x", "W_in"], ["h0"]))  # (B, width)
        nodes += [
            helper.make_node("MatMul", [f"h{i}", "W_deep"], [f"h{i + 1}"])
            for i in range(slow_depth)
        ]
        nodes += [
            helper.make_node("ReduceMean", [f"h{slow_depth}"], ["mean"], keepdims=1),  # (1, 1)
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["fast", "nothing"], ["logits"]),
        ]
    graph = helper.make_graph(
        nodes,
        name,
        [_value("x", TensorProto.FLOAT, ["batch", 4])],
        [_value("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=consts,
    )
    return _save(graph, directory, name)


def classifier_reference(x: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((4, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    return x @ weight + bias
