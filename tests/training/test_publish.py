"""From a trained model to a store version, through the real local store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import onnx
import pytest
import torch
from torch import Tensor, nn

from model_store import open_store
from model_store.schema import RaggedInput
from tests.training.helpers import tiny_images, tiny_sequences
from training.augment import random_affine
from training.export import ParityError
from training.pipeline import Trained, describe_train_config, package, train_model
from training.publish import UnchangedArtifactError, build_config, publish_run
from training.trainer import TrainConfig, TrainResult
from training.variants import onnx_accuracy


def test_sequence_model_published_with_manifest_config_and_variants(tmp_path: Path) -> None:
    trained = train_model(
        "gru", tiny_sequences(), TrainConfig(epochs=2, batch_size=16), {"hidden": 8}
    )
    run = package(trained, tmp_path / "run")
    store = open_store(str(tmp_path / "store"))

    assert publish_run(store, "tiny-gru", run) == 1
    # The same artifact again would be a second number for the same model: refused.
    with pytest.raises(UnchangedArtifactError, match="byte-identical to version 1"):
        publish_run(store, "tiny-gru", run)
    assert store.list_versions("tiny-gru") == [1]

    manifest = store.manifest("tiny-gru", 1)
    published = {f.path for f in manifest.files}
    assert published >= {"model.onnx", "model.onnx.data", "model.fp16.onnx", "model.int8.onnx"}
    assert published >= {"card.md", "curves.png"}
    assert [(i.name, i.datatype, i.shape) for i in manifest.inputs] == [
        ("x", "FP32", (-1, -1, 2)),
        ("lengths", "INT64", (-1,)),
    ]
    assert [(o.name, o.shape) for o in manifest.outputs] == [("logits", (-1, 2))]
    assert manifest.labels == ("neg", "pos")
    assert manifest.metrics["test_accuracy"] == pytest.approx(run.test_accuracy)
    assert manifest.metrics["parameters"] == sum(p.numel() for p in trained.model.parameters())
    assert manifest.parity["max_abs_diff"] <= 1e-4
    assert manifest.parity["padded_vs_single_max_abs_diff"] <= 1e-4
    assert manifest.producer.opset == 18
    assert manifest.producer.torch == torch.__version__
    assert manifest.extra["architecture"] == "gru"

    version_dir = tmp_path / "store" / "tiny-gru" / "1"
    fp32 = onnx_accuracy(version_dir / "model.onnx", trained.dataset.test)
    for name, precision in (("fp16", "fp16"), ("int8", "int8")):
        variant = manifest.variants[name]
        assert variant.precision == precision
        measured = onnx_accuracy(version_dir / variant.file, trained.dataset.test)
        assert variant.metrics["test_accuracy"] == pytest.approx(measured)
        assert variant.accuracy_delta == pytest.approx(measured - fp32)
    store.verify("tiny-gru", 1)

    config = store.config("tiny-gru")
    # Its longest sequence is 9 steps: 8 times that, rounded up to a power of two.
    assert trained.dataset.longest_sequence() == 9
    assert config.ragged_inputs == (
        RaggedInput(input="x", axis=1, pad_value=0.0, lengths_input="lengths", max_length=128),
    )
    # A retrain keeps the max_length an operator set in the store, unless its data is longer.
    for operator_set, kept in ((1000, 1000), (5, 9)):
        ragged = config.ragged_inputs[0].model_copy(update={"max_length": operator_set})
        existing = config.model_copy(update={"ragged_inputs": (ragged,)})
        assert build_config(run, existing=existing).ragged_inputs[0].max_length == kept
    assert config.labels == {"logits": ("neg", "pos")}


def test_fp16_variant_keeps_an_fp32_signature_with_half_weights(tmp_path: Path) -> None:
    trained = train_model(
        "cnn", tiny_images(), TrainConfig(epochs=1), {"channels": (4, 8), "hidden": 16}
    )
    run = package(trained, tmp_path, variants=("fp16",))
    half = onnx.load(str(tmp_path / "model.fp16.onnx"))
    float_type, half_type = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert [v.type.tensor_type.elem_type for v in half.graph.input] == [float_type]
    assert [v.type.tensor_type.elem_type for v in half.graph.output] == [float_type]
    assert {t.data_type for t in half.graph.initializer} & {float_type} == set()
    assert half_type in {t.data_type for t in half.graph.initializer}
    assert abs(run.variants[0].accuracy_delta) <= 0.05


class Drifting(nn.Module):
    """A model whose output depends on Python state the exporter freezes: ONNX cannot match it."""

    input_kind = "sequence"

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.calls = 0

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        self.calls += 1
        return self.linear(x.mean(dim=1)) + float(self.calls)


def test_failed_parity_refuses_to_publish(tmp_path: Path) -> None:
    trained = Trained("drifting", tiny_sequences(), Drifting(), TrainResult(), TrainConfig())
    store = open_store(str(tmp_path / "store"))
    with pytest.raises(ParityError, match="max \\|onnx - torch\\|"):
        publish_run(store, "drifting", package(trained, tmp_path / "run"))
    assert store.list_models() == []
    assert not (tmp_path / "store" / "drifting").exists()


def test_publish_rechecks_parity_figures(tmp_path: Path) -> None:
    trained = train_model(
        "cnn", tiny_images(), TrainConfig(epochs=1), {"channels": (4, 8), "hidden": 16}
    )
    run = package(trained, tmp_path / "run", variants=())
    broken = replace(run, parity=replace(run.parity, max_abs_diff=float("nan")))
    store = open_store(str(tmp_path / "store"))
    with pytest.raises(ParityError, match="refusing to publish"):
        publish_run(store, "cnn", broken)
    assert store.list_models() == []


def test_train_settings_are_recorded_as_json_values(tmp_path: Path) -> None:
    config = TrainConfig(augment=random_affine, checkpoint_path=tmp_path / "best.pt")
    described = describe_train_config(config)
    assert described["augment"] == "random_affine"
    assert described["checkpoint_path"] == str(tmp_path / "best.pt")
    assert json.loads(json.dumps(described)) == described
