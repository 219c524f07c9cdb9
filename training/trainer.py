"""An architecture-agnostic training loop (in the spirit of minGPT's trainer).

The trainer knows only that a model maps its inputs to class logits: a batch is the tuple of
input arrays from `Split.inputs()` plus integer targets. Seeded, device auto-selected, one
evaluation per epoch, early stopping on validation accuracy, best weights kept.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from training.data import Split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-2
    patience: int = 5  # epochs without a better validation accuracy before stopping
    grad_clip: float = 1.0  # keeps the vanilla RNN's gradients from exploding
    seed: int = 0
    device: str = "auto"
    checkpoint_path: Path | None = None  # also write the best state_dict here
    # Applied to the first input of each training batch (never to validation or test data).
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
    progress: bool | None = None  # None: a bar only when stderr is a terminal


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float


@dataclass
class TrainResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = -1.0
    train_time_s: float = 0.0
    stopped_early: bool = False
    best_state: dict[str, Tensor] = field(default_factory=dict)


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def batches(
    split: Split, batch_size: int, device: torch.device, generator: torch.Generator | None = None
) -> Iterator[tuple[tuple[Tensor, ...], Tensor]]:
    """(inputs, targets) per batch; shuffled when a generator is given, else in order.

    Sequence batches are cut to their longest member: padding beyond it is pure waste.
    """
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size].numpy()
        inputs = [torch.from_numpy(a[index]) for a in split.inputs()]
        if len(inputs) == 2:  # (x, lengths)
            inputs[0] = inputs[0][:, : int(inputs[1].max())]
        targets = torch.from_numpy(split.y[index])
        yield tuple(t.to(device) for t in inputs), targets.to(device)


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int = 256) -> np.ndarray:
    """Logits (N, classes) for a whole split, in order, in eval mode."""
    device = next(model.parameters()).device
    model.eval()
    outputs = [model(*inputs).float().cpu() for inputs, _ in batches(split, batch_size, device)]
    return torch.cat(outputs).numpy()


def accuracy(logits: np.ndarray, targets: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == targets).mean())


def _evaluate(model: nn.Module, split: Split, batch_size: int) -> tuple[float, float]:
    logits = predict(model, split, batch_size)
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(split.y)).item()
    return loss, accuracy(logits, split.y)


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = select_device(config.device)

    def fit(self, model: nn.Module, train: Split, val: Split) -> TrainResult:
        """Train `model` in place; on return it holds the best validation weights."""
        cfg = self.config
        seed_everything(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        augment_generator = torch.Generator().manual_seed(cfg.seed + 1)
        model.to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        # One cycle: warm-up then cosine decay over the planned epochs; early stopping may end
        # sooner, which only means the best epoch came before the decay finished.
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
        )
        show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
        result = TrainResult()
        best_val_loss = math.inf
        start = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            total_loss, correct, seen = 0.0, 0, 0
            bar = tqdm(
                batches(train, cfg.batch_size, self.device, generator),
                total=steps_per_epoch,
                desc=f"epoch {epoch}/{cfg.epochs}",
                disable=not show,
                leave=False,
            )
            for inputs, targets in bar:
                if cfg.augment is not None:
                    inputs = (cfg.augment(inputs[0], augment_generator), *inputs[1:])
                logits = model(*inputs)
                loss = F.cross_entropy(logits, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                total_loss += loss.item() * len(targets)
                correct += int((logits.argmax(1) == targets).sum())
                seen += len(targets)
                bar.set_postfix(loss=f"{total_loss / seen:.3f}")
            val_loss, val_acc = _evaluate(model, val, cfg.batch_size * 4)
            record = EpochRecord(epoch, total_loss / seen, correct / seen, val_loss, val_acc)
            result.history.append(record)
            log.info(
                "epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f",
                epoch, record.train_loss, record.train_accuracy, val_loss, val_acc,
            )  # fmt: skip
            # Ties in accuracy (common on a few hundred validation samples) go to lower loss.
            if val_acc > result.best_val_accuracy or (
                val_acc == result.best_val_accuracy and val_loss < best_val_loss
            ):
                best_val_loss = val_loss
                result.best_epoch, result.best_val_accuracy = epoch, val_acc
                result.best_state = {
                    k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                }
                if cfg.checkpoint_path is not None:
                    torch.save(result.best_state, cfg.checkpoint_path)
            elif epoch - result.best_epoch >= cfg.patience:
                log.info("early stop: no better validation accuracy for %d epochs", cfg.patience)
                result.stopped_early = True
                break
        result.train_time_s = time.perf_counter() - start
        model.load_state_dict(copy.deepcopy(result.best_state))
        model.eval()
        return result


def plot_curves(history: list[EpochRecord], path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch (train and validation) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [r.train_loss for r in history], label="train")
    ax_loss.plot(epochs, [r.val_loss for r in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [r.train_accuracy for r in history], label="train")
    ax_acc.plot(epochs, [r.val_accuracy for r in history], label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
