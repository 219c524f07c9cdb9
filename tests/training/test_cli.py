"""The command line, end to end on tiny data (the demo's own training is too long for CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from model_store import add_onnx, open_store
from tests.training.helpers import tiny_sequences
from training.cli import DEMO_MODELS, main
from training.export import export_onnx
from training.pipeline import build_model


def _write_npz(path: Path) -> Path:
    data = tiny_sequences()
    np.savez(
        path,
        x_train=data.train.x, y_train=data.train.y, lengths_train=np.asarray(data.train.lengths),
        x_test=data.test.x, y_test=data.test.y, lengths_test=np.asarray(data.test.lengths),
        labels=np.array(data.labels),
    )  # fmt: skip
    return path


def test_train_then_publish_a_users_npz(tmp_path: Path) -> None:
    npz = _write_npz(tmp_path / "speech.npz")
    store_dir = tmp_path / "store"
    argv = ["train", "--arch", "transformer", "--dataset", str(npz), "--epochs", "2"]
    argv += ["--model-option", "d_model=8", "--model-option", "heads=2", "--no-variants"]
    argv += ["--out", str(tmp_path / "run"), "--publish", str(store_dir), "--name", "speech"]
    assert main(argv) == 0

    store = open_store(str(store_dir))
    manifest = store.manifest("speech", store.resolve("speech"))
    assert manifest.labels == ("neg", "pos")
    assert manifest.variants == {}
    assert manifest.extra["model_config"] == {"d_model": 8, "heads": 2}  # JSON values
    assert manifest.extra["recipe"]["model_config"] == {"d_model": 8, "heads": 2}
    assert manifest.extra["recipe"]["dataset"] == str(npz.resolve())
    assert (tmp_path / "run" / "checkpoint.pt").exists()  # kept in the run, never published
    assert "checkpoint.pt" not in {f.path for f in manifest.files}


def test_demo_skips_models_already_in_the_store(tmp_path: Path) -> None:
    data = tiny_sequences(8, 8)
    onnx_path = export_onnx(build_model("gru", data, hidden=4), data.test, tmp_path / "onnx")
    store = open_store(str(tmp_path / "store"))
    for demo in DEMO_MODELS:
        add_onnx(store, demo.name, onnx_path)

    assert main(["demo", "--store", str(tmp_path / "store")]) == 0  # would train for a minute
    assert {d.name for d in DEMO_MODELS} == {"cnn", "resnet", "gru", "transformer"}
    assert all(store.list_versions(d.name) == [1] for d in DEMO_MODELS)


def test_module_entry_point_shows_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "training", "--help"], capture_output=True, text=True, check=True
    )
    assert "train" in out.stdout
    assert "demo" in out.stdout
    assert "compare" in out.stdout
