"""From a name to a validated artefact: data → model → training → ONNX → parity → variants.

`train_model` trains, `package` exports and validates (raising `ParityError` on any miss) and
writes everything a version holds into one directory; `publish.publish_run` then hands that
directory to the store. The CLI, the demo, `compare` and the acceptance benchmark all use these.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.data import Dataset, load_dataset
from training.export import ParityReport, check_parity, export_onnx
from training.models import create_model, model_entry
from training.trainer import TrainConfig, Trainer, TrainResult, accuracy, plot_curves, predict
from training.variants import Precision, VariantResult, make_variants

log = logging.getLogger(__name__)

CURVES_FILE = "curves.png"
CHECKPOINT_FILE = "checkpoint.pt"


def resolve_arch(arch: str, dataset: Dataset) -> str:
    """`cnn` means the 2-D CNN on images and the 1-D CNN on sequences; others must fit as named."""
    if arch == "cnn" and dataset.kind == "sequence":
        return "cnn1d"
    entry = model_entry(arch)
    if entry.input_kind != dataset.kind:
        raise ValueError(
            f"{arch} takes {entry.input_kind} inputs; {dataset.name} is {dataset.kind}"
        )
    return arch


def build_model(arch: str, dataset: Dataset, **config: Any) -> nn.Module:
    """A registered model sized for `dataset`, with its input statistics built in."""
    mean, std = dataset.channel_stats()
    if dataset.kind == "image":
        config.setdefault("image_size", int(dataset.train.x.shape[-1]))
    return create_model(
        arch,
        num_classes=dataset.num_classes,
        in_channels=dataset.in_channels,
        mean=mean,
        std=std,
        **config,
    )


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class Trained:
    arch: str
    dataset: Dataset
    model: nn.Module
    result: TrainResult
    train_config: TrainConfig
    model_config: dict[str, Any] = field(default_factory=dict)


def train_model(
    arch: str,
    dataset: Dataset | str,
    train_config: TrainConfig,
    model_config: dict[str, Any] | None = None,
    val_fraction: float = 0.1,
) -> Trained:
    """Train `arch` on `dataset`, early-stopping on a validation split carved out of train."""
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    arch = resolve_arch(arch, data)
    config = dict(model_config or {})
    torch.manual_seed(train_config.seed)  # the initial weights are part of the seeded run
    model = build_model(arch, data, **config)
    train, val = data.validation_split(val_fraction, train_config.seed)
    log.info("training %s on %s (%d parameters)", arch, data.name, parameter_count(model))
    result = Trainer(train_config).fit(model, train, val)
    return Trained(arch, data, model.cpu(), result, train_config, config)


@dataclass(frozen=True)
class Run:
    """A trained, exported and validated model: everything a store version needs."""

    arch: str
    dataset: Dataset
    out_dir: Path
    onnx_path: Path
    test_accuracy: float
    parameters: int
    parity: ParityReport
    variants: tuple[VariantResult, ...]
    train_result: TrainResult
    train_config: TrainConfig
    model_config: dict[str, Any]

    def files(self) -> dict[str, Path]:
        """Every file of the version, by its path inside the version (checkpoints excluded)."""
        return {p.name: p for p in sorted(self.out_dir.iterdir()) if p.suffix != ".pt"}


def package(
    trained: Trained, out_dir: Path, variants: tuple[Precision, ...] = ("fp16", "int8")
) -> Run:
    """Export, validate and complete `out_dir`; raises `ParityError` if ONNX disagrees."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model, data = trained.model.cpu().eval(), trained.dataset
    test_accuracy = accuracy(predict(model, data.test), data.test.y)
    example = data.test.subset(np.arange(min(3, len(data.test))))
    onnx_path = export_onnx(model, example, out_dir)
    parity = check_parity(model, onnx_path, data.test)
    made = make_variants(onnx_path, data.test, variants) if variants else []
    plot_curves(trained.result.history, out_dir / CURVES_FILE, f"{trained.arch} on {data.name}")
    run = Run(
        trained.arch,
        data,
        out_dir,
        onnx_path,
        test_accuracy,
        parameter_count(model),
        parity,
        tuple(made),
        trained.result,
        trained.train_config,
        trained.model_config,
    )
    log.info("%s on %s: test accuracy %.4f", run.arch, data.name, test_accuracy)
    return run


def describe_train_config(config: TrainConfig) -> dict[str, Any]:
    """The training settings as JSON values (a path as text, an augmentation by its name)."""

    def plain(value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        return getattr(value, "__name__", str(value))

    return {k: plain(v) for k, v in asdict(config).items()}
