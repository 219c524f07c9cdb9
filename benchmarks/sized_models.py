"""ONNX models of a chosen weight size, built directly with onnx's helper (no training), for
the memory budget's tests and the many-model benchmark.

x FP32 [-1, 16] → y FP32 [-1, 1] = rowsum(x @ W) + tag, with W [16, K] filled with 1/K: every
answer is sum(x) + tag, so a client can tell which model computed it, and W makes the weights
file `weight_bytes` large (K = weight_bytes / 64). Served with batching up to `max_batch`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model_store import add_onnx, open_store
from model_store.schema import BatchingConfig, ModelConfig

FEATURES = 16
OPSET = 17


def sized_model(path: Path, weight_bytes: int, tag: float) -> Path:
    columns = max(weight_bytes // (FEATURES * 4), 1)
    weight = np.full((FEATURES, columns), 1.0 / columns, dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["wide"]),
        helper.make_node("ReduceSum", ["wide", "axes"], ["total"], keepdims=1),
        helper.make_node("Add", ["total", "tag"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "sized",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.array(tag, dtype=np.float32), "tag"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def expected(x: np.ndarray, tag: float) -> np.ndarray:
    return x.sum(axis=1, keepdims=True, dtype=np.float32) + np.float32(tag)


def publish_sized(
    store_uri: str,
    name: str,
    weight_bytes: int,
    tag: float,
    scratch: Path,
    *,
    pinned: bool = False,
    max_batch: int = 8,
) -> None:
    config = ModelConfig(batching=BatchingConfig(max_batch_size=max_batch), pinned=pinned)
    path = sized_model(scratch / f"{name}.onnx", weight_bytes, tag)
    add_onnx(open_store(store_uri), name, path, config=config)
    path.unlink()
