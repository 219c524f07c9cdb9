"""add_onnx: importing ONNX files made elsewhere, with or without external data."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from model_store import (
    ModelStore,
    TensorSpec,
    UnsafeModelError,
    UnsupportedModelError,
    add_onnx,
    onnx_signature,
)
from tests.model_store.helpers import write_escaping_model, write_model


def test_signature_is_read_from_the_graph(model_file: Path) -> None:
    inputs, outputs = onnx_signature(model_file)
    assert inputs == (TensorSpec(name="x", datatype="FP32", shape=(-1, 4)),)
    assert outputs == (TensorSpec(name="logits", datatype="FP32", shape=(-1, 3)),)


def test_signature_maps_datatypes_and_hides_initializers(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["as_float"], to=TensorProto.DOUBLE)],
        "cast",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 7]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("as_float", TensorProto.DOUBLE, ["n", 7])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])],
    )
    path = tmp_path / "cast.onnx"
    onnx.save_model(helper.make_model(graph), str(path))
    inputs, outputs = onnx_signature(path)
    assert inputs == (TensorSpec(name="ids", datatype="INT64", shape=(-1, 7)),)
    assert outputs == (TensorSpec(name="as_float", datatype="FP64", shape=(-1, 7)),)


def test_types_without_a_v2_datatype_are_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "bf16",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [1])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [1])],
    )
    path = tmp_path / "bf16.onnx"
    onnx.save_model(helper.make_model(graph), str(path))
    with pytest.raises(UnsupportedModelError, match="BFLOAT16"):
        onnx_signature(path)
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot onnx")
    with pytest.raises(UnsupportedModelError, match="not a readable ONNX"):
        onnx_signature(tmp_path / "junk.onnx")


def test_add_a_self_contained_model(store: ModelStore, model_file: Path) -> None:
    version = add_onnx(store, "imported", model_file, labels=["a", "b", "c"], dataset="toy")
    assert version == 1
    manifest = store.manifest("imported", 1)
    # The labels make a config, which travels inside the version beside the model.
    assert [f.path for f in manifest.files] == ["config.json", "model.onnx"]
    assert manifest.inputs[0].shape == (-1, 4)
    assert manifest.producer.package == "unit-test"
    assert manifest.producer.package_version == "9.9"
    assert manifest.producer.opset == 17
    assert manifest.labels == ("a", "b", "c")
    assert manifest.dataset == "toy"
    assert store.config("imported").labels == {"logits": ("a", "b", "c")}
    store.verify("imported", 1)


def test_add_a_model_with_external_data_under_another_name(
    store: ModelStore, tmp_path: Path
) -> None:
    source = write_model(tmp_path / "elsewhere", external=True, name="resnet-export.onnx")
    add_onnx(store, "ext", source)
    manifest = store.manifest("ext", 1)
    assert sorted(f.path for f in manifest.files) == ["model.onnx", "resnet-export.onnx.data"]
    version_dir = store.materialize("ext", 1, tmp_path / "cache")
    # The stored copy loads with its weights from inside the version directory.
    loaded = onnx.load(str(version_dir / "model.onnx"))
    assert loaded.graph.initializer[0].raw_data


def test_add_refuses_external_data_outside_the_source_dir(
    store: ModelStore, tmp_path: Path
) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 48)
    model = write_escaping_model(tmp_path / "src", "../secret.bin")
    with pytest.raises(UnsafeModelError, match="outside the version"):
        add_onnx(store, "evil", model)
    assert store.list_models() == []
