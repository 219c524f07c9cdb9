"""What the store needs to know about an ONNX file: its signature and the files it points to.

Models are always read with `load_external_data=False`: the store only looks at the graph, never
at weights, and never follows an external-data location before it was checked.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto

from model_store.errors import (
    IntegrityError,
    StoreError,
    UnsafeModelError,
    UnsupportedModelError,
)
from model_store.schema import Datatype, Producer, TensorSpec

# ONNX element types that have an Open Inference Protocol datatype.
_DATATYPES: dict[int, Datatype] = {
    TensorProto.BOOL: "BOOL",
    TensorProto.UINT8: "UINT8",
    TensorProto.UINT16: "UINT16",
    TensorProto.UINT32: "UINT32",
    TensorProto.UINT64: "UINT64",
    TensorProto.INT8: "INT8",
    TensorProto.INT16: "INT16",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.FLOAT16: "FP16",
    TensorProto.FLOAT: "FP32",
    TensorProto.DOUBLE: "FP64",
    TensorProto.STRING: "BYTES",
}


def load_graph(onnx_path: Path) -> ModelProto:
    """The model without its external weights."""
    if not onnx_path.is_file():
        raise StoreError(f"{onnx_path}: no such file")
    try:
        return onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError… for bad files
        raise UnsupportedModelError(f"{onnx_path.name}: not a readable ONNX model ({exc})") from exc


def _tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    if not value.type.HasField("tensor_type"):
        kind = value.type.WhichOneof("value")
        raise UnsupportedModelError(f"{value.name!r} is a {kind}, only tensors can be served")
    tensor_type = value.type.tensor_type
    datatype = _DATATYPES.get(tensor_type.elem_type)
    if datatype is None:
        elem = TensorProto.DataType.Name(tensor_type.elem_type)
        raise UnsupportedModelError(f"{value.name!r} has type {elem}, which has no V2 datatype")
    if not tensor_type.HasField("shape"):
        raise UnsupportedModelError(f"{value.name!r} has an unknown rank")
    # A named (symbolic) or missing dimension is dynamic; exporters also write 0 for "unknown".
    shape = tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
        for d in tensor_type.shape.dim
    )
    return TensorSpec(name=value.name, datatype=datatype, shape=shape)


def signature_of(model: ModelProto) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    # IR < 4 lists initializers among the inputs; they are weights, not something a client sends.
    weights = {t.name for t in model.graph.initializer}
    inputs = tuple(_tensor_spec(v) for v in model.graph.input if v.name not in weights)
    outputs = tuple(_tensor_spec(v) for v in model.graph.output)
    return inputs, outputs


def onnx_signature(onnx_path: Path | str) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """(inputs, outputs) of an ONNX file, with V2 datatypes and -1 for dynamic dimensions."""
    return signature_of(load_graph(Path(onnx_path)))


def producer_of(model: ModelProto) -> Producer:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return Producer(
        package=model.producer_name or "unknown",
        package_version=model.producer_version or None,
        opset=opset,
    )


def _graph_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes: list[AttributeProto]) -> Iterator[TensorProto]:
    for attr in attributes:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for sub in attr.graphs:
            yield from _graph_tensors(sub)


def _model_tensors(model: ModelProto) -> Iterator[TensorProto]:
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(list(node.attribute))


def external_locations(model: ModelProto) -> list[str]:
    """Every distinct external-data `location` the model's tensors name, as written."""
    found: dict[str, None] = {}
    for tensor in _model_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        found.setdefault(entries.get("location", ""), None)
    return list(found)


def location_key(onnx_key: str, location: str) -> str:
    """The version-relative key an external-data `location` of the file `onnx_key` resolves to.

    ONNX resolves locations against the directory of the .onnx file; anything absolute or
    climbing out with `..` is refused, so a model cannot make the runtime read /etc/passwd.
    """
    if (
        not location
        or location.startswith(("/", "\\"))
        or "\\" in location
        or (len(location) > 1 and location[1] == ":")  # a Windows drive, C:...
        or ".." in location.split("/")
        or "\x00" in location
    ):
        raise UnsafeModelError(
            f"{onnx_key}: external data location {location!r} points outside the version "
            "directory (it must be a relative path without '..')"
        )
    key = posixpath.normpath(posixpath.join(posixpath.dirname(onnx_key), location))
    if key.startswith("../") or key in ("..", "."):
        raise UnsafeModelError(f"{onnx_key}: external data location {location!r} escapes")
    return key


def check_external_data(onnx_path: Path | str, version_dir: Path | str) -> list[Path]:
    """Check that every external-data file of `onnx_path` is a regular file inside `version_dir`.

    Returns the files. The service calls this before handing a model to ONNX Runtime.
    """
    onnx_path, version_dir = Path(onnx_path), Path(version_dir)
    root = version_dir.resolve()
    if onnx_path.is_symlink() or not onnx_path.resolve().is_relative_to(root):
        raise UnsafeModelError(f"{onnx_path} is not a plain file inside {version_dir}")
    onnx_key = onnx_path.resolve().relative_to(root).as_posix()
    files = []
    for location in external_locations(load_graph(onnx_path)):
        path = version_dir / location_key(onnx_key, location)
        if path.is_symlink():
            raise UnsafeModelError(f"{onnx_key}: external data {location!r} is a symlink")
        if not path.resolve().is_relative_to(root):
            raise UnsafeModelError(f"{onnx_key}: external data {location!r} escapes the version")
        if not path.is_file():
            raise IntegrityError(f"{onnx_key}: external data file {location!r} is missing")
        files.append(path)
    return files
