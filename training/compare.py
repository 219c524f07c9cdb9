"""Every architecture on every dataset it fits: accuracy, parameters, CPU latency per sample.

The table makes the inductive biases visible: convolutions on images, recurrence and attention on
sequences, and what each costs at inference time.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data import Dataset, load_dataset
from training.export import cpu_session, run_onnx
from training.models import list_models
from training.pipeline import package, train_model
from training.trainer import TrainConfig

log = logging.getLogger(__name__)

DATASETS = ("mnist", "mnist1d", "japanese_vowels")


@dataclass(frozen=True)
class Row:
    arch: str
    dataset: str
    test_accuracy: float
    parameters: int
    latency_ms: float  # ONNX Runtime, one CPU thread, batch of one
    train_time_s: float


def latency_per_sample_ms(onnx_path: Path, data: Dataset, repeats: int = 200) -> float:
    """Median batch-1 latency on one ONNX Runtime thread, over held-out samples."""
    session = cpu_session(onnx_path, threads=1)
    samples = [data.test.subset(np.array([i % len(data.test)])) for i in range(repeats)]
    for sample in samples[:10]:  # warm-up
        run_onnx(session, _trimmed(sample.inputs()))
    times = []
    for sample in samples:
        inputs = _trimmed(sample.inputs())
        start = time.perf_counter()
        run_onnx(session, inputs)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _trimmed(inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """A single sequence is sent at its own length, as a client would send it."""
    if len(inputs) == 1:
        return inputs
    x, lengths = inputs
    return x[:, : int(lengths[0])], lengths


def compare(
    out_dir: Path, train_config: TrainConfig, datasets: tuple[str, ...] = DATASETS
) -> list[Row]:
    rows = []
    for name in datasets:
        data = load_dataset(name)
        for arch in list_models(data.kind):
            run = package(
                train_model(arch, data, train_config), out_dir / f"{arch}-{name}", variants=()
            )
            row = Row(
                arch,
                name,
                run.test_accuracy,
                run.parameters,
                latency_per_sample_ms(run.onnx_path, data),
                run.train_result.train_time_s,
            )
            log.info("%s", row)
            rows.append(row)
    write_table(rows, out_dir / "compare.md", train_config)
    plot(rows, out_dir / "compare.png")
    return rows


def write_table(rows: list[Row], path: Path, config: TrainConfig) -> Path:
    lines = [
        f"Each architecture on each dataset it fits ({config.epochs} epochs max, early stopping "
        f"patience {config.patience}, seed {config.seed}). Latency: ONNX Runtime, one CPU "
        "thread, batch 1, median.",
        "",
        "| dataset | architecture | test accuracy | parameters | latency / sample (ms) | "
        "train time (s) |",
        "|---|---|---:|---:|---:|---:|",
        *(
            f"| {r.dataset} | {r.arch} | {r.test_accuracy:.2%} | {r.parameters:,} | "
            f"{r.latency_ms:.3f} | {r.train_time_s:.0f} |"
            for r in rows
        ),
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def plot(rows: list[Row], path: Path) -> Path:
    """Accuracy against latency, one panel per dataset; marker area grows with parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.dataset for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for r in (r for r in rows if r.dataset == name):
            ax.scatter(r.latency_ms, r.test_accuracy, s=20 + r.parameters / 2000, alpha=0.6)
            ax.annotate(r.arch, (r.latency_ms, r.test_accuracy), fontsize=8)
        ax.set(title=name, xlabel="latency per sample (ms, 1 thread)", ylabel="test accuracy")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
