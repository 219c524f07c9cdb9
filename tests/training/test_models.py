"""Every registered model builds, exports to ONNX and matches PyTorch (one test, the registry)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.training.helpers import tiny_images, tiny_sequences
from training.export import check_parity, export_onnx, mixed_length_batch
from training.models import create_model, list_models, model_entry
from training.pipeline import build_model


@pytest.mark.parametrize("name", list_models())
def test_registered_model_exports_with_parity(name: str, tmp_path: Path) -> None:
    entry = model_entry(name)
    data = tiny_images(8, 16) if entry.input_kind == "image" else tiny_sequences(8, 16)
    model = build_model(name, data, **entry.tiny_config).eval()

    path = export_onnx(model, data.test.subset(np.arange(3)), tmp_path)
    report = check_parity(model, path, data.test)

    graph = onnx.load(str(path), load_external_data=False).graph
    assert [i.name for i in graph.input] == (
        ["x"] if entry.input_kind == "image" else ["x", "lengths"]
    )
    assert [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis
    assert report.max_abs_diff <= 1e-4
    assert report.argmax_agreement == 1.0
    if entry.input_kind == "sequence":
        assert graph.input[0].type.tensor_type.shape.dim[1].dim_param  # dynamic sequence axis
        assert report.padded_vs_single_max_abs_diff is not None
        assert report.padded_vs_single_max_abs_diff <= 1e-4
        assert len(set(mixed_length_batch(data.test).lengths.tolist())) > 1  # type: ignore[union-attr]


def test_unknown_model_names_the_registered_ones() -> None:
    with pytest.raises(KeyError, match="registered: cnn"):
        create_model("vgg")


def test_resnet_depth_must_be_6n_plus_2() -> None:
    with pytest.raises(ValueError, match="6n \\+ 2"):
        create_model("resnet", depth=10)
    assert create_model("resnet", depth=14) is not None
