"""Reduced-precision encodings published beside the fp32 model, each with its measured accuracy.

fp16 (for GPUs): weights and activations in half precision, inputs and outputs kept fp32 so the
signature does not change. int8 (for CPUs): ONNX Runtime's dynamic quantisation (int8 weights,
activations quantised on the fly). Both are scored with ONNX Runtime on the held-out split.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import numpy_helper

from training.data import Split
from training.export import cpu_session, run_onnx

log = logging.getLogger(__name__)

Precision = Literal["fp16", "int8"]
VARIANT_FILES: dict[Precision, str] = {"fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


@dataclass(frozen=True)
class VariantResult:
    precision: Precision
    path: Path
    accuracy: float
    accuracy_delta: float  # variant accuracy − fp32 accuracy, on the same samples


def onnx_accuracy(path: Path, split: Split, batch_size: int = 256) -> float:
    session = cpu_session(path, threads=0)  # 0: ONNX Runtime's default, all cores
    correct = 0
    for start in range(0, len(split), batch_size):
        part = split.subset(np.arange(start, min(start + batch_size, len(split))))
        correct += int((run_onnx(session, part.inputs()).argmax(1) == part.y).sum())
    return correct / len(split)


def _half_tensor(tensor: onnx.TensorProto) -> onnx.TensorProto:
    array = numpy_helper.to_array(tensor)
    if array.dtype != np.float32:
        return tensor
    return numpy_helper.from_array(array.astype(np.float16), tensor.name)


def _halve_graph(graph: onnx.GraphProto) -> None:
    """Halve initialisers, constants and casts of `graph` and, recursively, its subgraphs."""
    halved = [_half_tensor(t) for t in graph.initializer]
    del graph.initializer[:]
    graph.initializer.extend(halved)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                attr.t.CopyFrom(_half_tensor(attr.t))
            elif attr.type == onnx.AttributeProto.GRAPH:  # If / Loop / Scan bodies
                _halve_graph(attr.g)
                for value in attr.g.output:
                    if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                        value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
            elif attr.name == "to" and node.op_type == "Cast" and attr.i == onnx.TensorProto.FLOAT:
                attr.i = onnx.TensorProto.FLOAT16
    del graph.value_info[:]


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every fp32 tensor of the graph becomes fp16; inputs and outputs stay fp32 behind casts.

    Float initialisers and constants are halved, casts to float retargeted to float16, and value
    infos dropped (ONNX Runtime infers them again). ONNX Runtime runs ops that lack an fp16 kernel
    on a device (e.g. GRU on CPU) in fp32 with casts it inserts itself.
    """
    graph = model.graph
    _halve_graph(graph)
    float_type = onnx.TensorProto.FLOAT
    casts_in, casts_out = [], []
    for value in graph.input:
        if value.type.tensor_type.elem_type == float_type:
            inner = f"{value.name}_fp16"
            for node in graph.node:
                node.input[:] = [inner if i == value.name else i for i in node.input]
            casts_in.append(
                onnx.helper.make_node("Cast", [value.name], [inner], to=onnx.TensorProto.FLOAT16)
            )
    for value in graph.output:
        if value.type.tensor_type.elem_type == float_type:
            inner = f"{value.name}_fp16"
            for node in graph.node:
                node.output[:] = [inner if o == value.name else o for o in node.output]
            casts_out.append(onnx.helper.make_node("Cast", [inner], [value.name], to=float_type))
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def to_fp16(src: Path, dst: Path) -> Path:
    model = onnx.load(str(src))  # pulls external data in from beside `src`
    if any(f.name for f in model.functions):
        raise ValueError(f"{src}: graphs with local functions are not converted to fp16")
    onnx.save(convert_to_fp16(model), str(dst))
    onnx.checker.check_model(str(dst), full_check=True)
    return dst


def to_int8(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The dynamo exporter records shapes and types in value_info, initialisers included; the
    # quantiser rewrites some weights (transposed Gemm weights) and then trips over the stale
    # shapes, so quantise a copy without them (ONNX Runtime infers shapes itself).
    model = onnx.load(str(src))
    del model.graph.value_info[:]
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "model.onnx"
        onnx.save(model, str(plain))
        quantize_dynamic(plain, dst, weight_type=QuantType.QInt8)
    onnx.checker.check_model(str(dst), full_check=True)
    return dst


_CONVERTERS = {"fp16": to_fp16, "int8": to_int8}


def make_variants(
    fp32_path: Path,
    held_out: Split,
    precisions: tuple[Precision, ...] = ("fp16", "int8"),
    fp32_accuracy: float | None = None,
) -> list[VariantResult]:
    """Write each variant next to `fp32_path` and score it against the fp32 model."""
    base = onnx_accuracy(fp32_path, held_out) if fp32_accuracy is None else fp32_accuracy
    results = []
    for precision in precisions:
        path = _CONVERTERS[precision](fp32_path, fp32_path.with_name(VARIANT_FILES[precision]))
        acc = onnx_accuracy(path, held_out)
        log.info("%s variant: accuracy %.4f (%+.4f vs fp32)", precision, acc, acc - base)
        results.append(VariantResult(precision, path, acc, acc - base))
    return results
