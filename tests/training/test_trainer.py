from __future__ import annotations

from pathlib import Path

import torch

from tests.training.helpers import tiny_sequences
from training.pipeline import build_model
from training.trainer import TrainConfig, Trainer, TrainResult, plot_curves, select_device


def _fit(config: TrainConfig) -> tuple[torch.nn.Module, TrainResult]:
    data = tiny_sequences()
    train, val = data.validation_split(0.25, seed=0)
    model = build_model("gru", data, hidden=8)
    return model, Trainer(config).fit(model, train, val)


def test_same_seed_same_run_and_other_seed_another() -> None:
    config = TrainConfig(epochs=2, batch_size=16, seed=3)
    torch.manual_seed(0)
    model_a, result_a = _fit(config)
    torch.manual_seed(0)
    model_b, result_b = _fit(config)
    torch.manual_seed(0)
    model_c, _ = _fit(TrainConfig(epochs=2, batch_size=16, seed=4))
    assert result_a.history == result_b.history
    for (name, a), b in zip(
        model_a.state_dict().items(), model_b.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not torch.equal(model_a.state_dict()["head.weight"], model_c.state_dict()["head.weight"])


def test_early_stopping_after_patience_epochs_without_progress() -> None:
    # lr = 0: validation accuracy can never improve after the first epoch.
    _, result = _fit(TrainConfig(epochs=10, batch_size=16, lr=0.0, patience=2))
    assert result.stopped_early
    assert result.best_epoch == 1
    assert len(result.history) == 3


def test_best_checkpoint_is_kept_restored_and_saved(tmp_path: Path) -> None:
    checkpoint = tmp_path / "best.pt"
    model, result = _fit(
        TrainConfig(epochs=8, batch_size=16, lr=2e-2, patience=8, checkpoint_path=checkpoint)
    )
    history = result.history
    # The best accuracy, ties going to the lower loss, then to the earlier epoch.
    best = max(history, key=lambda r: (r.val_accuracy, -r.val_loss, -r.epoch))
    assert result.best_epoch == best.epoch
    assert result.best_val_accuracy == best.val_accuracy
    saved = torch.load(checkpoint, weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
        assert torch.equal(tensor, result.best_state[name]), name
    assert not model.training


def test_learning_curves_png(tmp_path: Path) -> None:
    _, result = _fit(TrainConfig(epochs=2, batch_size=16))
    path = plot_curves(result.history, tmp_path / "curves.png", "gru")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_auto_device_is_cuda_only_when_available() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device("cpu").type == "cpu"
