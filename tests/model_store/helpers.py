"""Small ONNX models and manifests for store tests (importable by other test packages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model_store import Manifest, Producer, TensorSpec


def linear_model(features: int = 4, classes: int = 3) -> onnx.ModelProto:
    """y = x @ W + b with a dynamic batch axis named 'batch'."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(
        rng.standard_normal((features, classes)).astype(np.float32), "W"
    )
    bias = numpy_helper.from_array(np.zeros(classes, np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=[weight, bias],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="unit-test",
        producer_version="9.9",
    )
    onnx.checker.check_model(model)
    return model


def write_model(directory: Path, *, external: bool = False, name: str = "model.onnx") -> Path:
    """Write the linear model; with `external`, its weights go to `<name>.data` beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    onnx.save_model(
        linear_model(),
        str(path),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location=f"{name}.data",
        size_threshold=0,
    )
    return path


def claim_external_data(tensor: TensorProto, location: str) -> None:
    """Makes `tensor` claim that its bytes live in the external file `location`."""
    length = len(tensor.raw_data) or 4 * len(tensor.float_data)
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def write_escaping_model(directory: Path, location: str) -> Path:
    """A model whose weight W claims to live at `location` (e.g. '../secret.bin')."""
    directory.mkdir(parents=True, exist_ok=True)
    model = linear_model()
    claim_external_data(model.graph.initializer[0], location)
    path = directory / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def manifest_for(name: str) -> Manifest:
    return Manifest(
        name=name,
        inputs=(TensorSpec(name="x", datatype="FP32", shape=(-1, 4)),),
        outputs=(TensorSpec(name="logits", datatype="FP32", shape=(-1, 3)),),
        producer=Producer(package="tests"),
    )
