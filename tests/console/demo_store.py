"""A store shaped like the demo's (`python -m training demo`), built in milliseconds.

The four demo models with the names, signatures, labels and serving configs that training
publishes, but with fixed random weights instead of trained ones: training all four takes
minutes, and what the console tests check (states, signatures, the tensor a drawing becomes, the
page agreeing with a direct API call) does not depend on what the weights learnt.

- `cnn`, `resnet`: x FP32 [-1, 1, 28, 28] → logits FP32 [-1, 10], labels "0"…"9" (one affine
  layer over the pixels).
- `gru`, `transformer`: x FP32 [-1, -1, 12] ragged along time, lengths INT64 [-1] filled by the
  server → logits FP32 [-1, 9], labels "1"…"9" (an affine layer over the masked time mean).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model_store.schema import BatchingConfig, ModelConfig, RaggedInput
from tests.service.helpers import publish

OPSET = 17
DIGITS = tuple(str(d) for d in range(10))
SPEAKERS = tuple(str(s) for s in range(1, 10))
IMAGE_MODELS = ("cnn", "resnet")
SEQUENCE_MODELS = ("gru", "transformer")
MODELS = (*IMAGE_MODELS, *SEQUENCE_MODELS)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _affine(rng: np.random.Generator, n_in: int, n_out: int) -> list[onnx.TensorProto]:
    weight = rng.standard_normal((n_in, n_out)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    return [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]


def image_model(path: Path, seed: int) -> Path:
    """x [-1, 1, 28, 28] → logits [-1, 10] = flatten(x) @ w + b."""
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),  # (B, 784)
        helper.make_node("MatMul", ["flat", "w"], ["scores"]),  # (B, 10)
        helper.make_node("Add", ["scores", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "image",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=_affine(np.random.default_rng(seed), 784, 10),
    )
    return _save(graph, path)


def sequence_model(path: Path, seed: int) -> Path:
    """x [-1, -1, 12], lengths [-1] → logits [-1, 9] = mean of x's first `lengths` steps @ w + b."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["t"], axis=0),  # T
        helper.make_node("Range", ["zero", "t", "one"], ["steps"]),  # (T,)
        helper.make_node("Unsqueeze", ["steps", "axis0"], ["steps_row"]),  # (1, T)
        helper.make_node("Unsqueeze", ["lengths", "axis1"], ["len_col"]),  # (B, 1)
        helper.make_node("Less", ["steps_row", "len_col"], ["valid"]),  # (B, T)
        helper.make_node("Cast", ["valid"], ["valid_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["valid_f", "axis2"], ["mask"]),  # (B, T, 1)
        helper.make_node("Mul", ["x", "mask"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=0),  # (B, 12)
        helper.make_node("Cast", ["len_col"], ["len_f"], to=TensorProto.FLOAT),  # (B, 1)
        helper.make_node("Div", ["total", "len_f"], ["mean"]),
        helper.make_node("MatMul", ["mean", "w"], ["scores"]),  # (B, 9)
        helper.make_node("Add", ["scores", "b"], ["logits"]),
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
        "sequence",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", 12]),
            helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 9])],
        initializer=[*consts, *_affine(np.random.default_rng(seed), 12, 9)],
    )
    return _save(graph, path)


def build_demo_store(store: Path, work: Path) -> Path:
    """The four demo models, version 1 each, with the serving configs training writes."""
    work.mkdir(parents=True, exist_ok=True)
    image_config = ModelConfig(
        batching=BatchingConfig(max_batch_size=64), labels={"logits": DIGITS}
    )
    sequence_config = ModelConfig(
        batching=BatchingConfig(max_batch_size=64),
        ragged_inputs=(RaggedInput(input="x", axis=1, lengths_input="lengths"),),
        labels={"logits": SPEAKERS},
    )
    for seed, name in enumerate(MODELS):
        if name in IMAGE_MODELS:
            publish(store, name, image_model(work / f"{name}.onnx", seed), config=image_config)
        else:
            path = sequence_model(work / f"{name}.onnx", seed)
            publish(store, name, path, config=sequence_config)
    return store
