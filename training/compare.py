"""Every architecture on every dataset it fits, over several seeds: accuracy, parameters, latency.

Each (dataset, architecture, seed) trains on the training split minus a validation split (10 %,
drawn with the seed); the trainer keeps the weights of the epoch with the best validation
accuracy, so epochs too are chosen on validation. The test split is scored once per run and
never used to choose anything (see `training.selection`). The table makes the inductive biases
visible: convolutions on images, recurrence and attention on sequences, and what each costs at
inference time.
"""

from __future__ import annotations

import logging
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from training.data import Dataset, load_dataset
from training.export import cpu_session, run_onnx
from training.models import InputKind, list_models, model_entry
from training.pipeline import Trained, package, parameter_count, train_model
from training.selection import SeedRun, Summary, summarise
from training.trainer import TrainConfig, accuracy, predict

log = logging.getLogger(__name__)

DATASETS = ("mnist", "mnist1d", "japanese_vowels")
# Known before loading, so that a plan that cannot run is refused at once.
DATASET_KINDS: dict[str, InputKind] = {
    "mnist": "image",
    "mnist1d": "sequence",
    "japanese_vowels": "sequence",
}
VAL_FRACTION = 0.1

# Demo-scale epochs: enough for each dataset's models to be told apart, small enough for the
# whole grid × 3 seeds to finish on two shared CPU cores. `--epochs` overrides them all.
DEFAULT_EPOCHS = {"mnist": 5, "mnist1d": 15, "japanese_vowels": 40}
# JapaneseVowels has 270 training sequences: at batch 64 an epoch is only four steps.
DEFAULT_BATCH_SIZE = {"japanese_vowels": 32}


@dataclass(frozen=True)
class ComparePlan:
    datasets: tuple[str, ...]
    archs: tuple[str, ...]  # registered model names; each runs on the datasets of its input kind
    seeds: tuple[int, ...]
    base_config: TrainConfig
    epochs: int | None = None  # None: DEFAULT_EPOCHS per dataset
    batch_size: int | None = None  # None: DEFAULT_BATCH_SIZE per dataset, else the base config's

    def config_for(self, dataset: str, seed: int) -> TrainConfig:
        return replace(
            self.base_config,
            epochs=self.epochs or DEFAULT_EPOCHS.get(dataset, self.base_config.epochs),
            batch_size=self.batch_size
            or DEFAULT_BATCH_SIZE.get(dataset, self.base_config.batch_size),
            seed=seed,
        )

    def archs_for(self, data: Dataset) -> list[str]:
        return [a for a in self.archs if model_entry(a).input_kind == data.kind]


def default_archs() -> tuple[str, ...]:
    return tuple(list_models())


def check_plan(plan: ComparePlan, kinds: dict[str, InputKind]) -> None:
    """Refuse a plan with nothing to run or an architecture that fits none of its datasets."""
    if not plan.seeds:
        raise ValueError("no seeds given")
    if len(set(plan.seeds)) != len(plan.seeds):
        raise ValueError(f"seeds repeat: {list(plan.seeds)}")
    for arch in plan.archs:
        kind = model_entry(arch).input_kind
        if kind not in kinds.values():
            raise ValueError(
                f"{arch} takes {kind} inputs; none of {', '.join(plan.datasets)} is {kind}"
            )


@dataclass(frozen=True)
class Outcome:
    runs: list[SeedRun]
    summaries: list[Summary]
    wall_time_s: float


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


def _export_and_time(trained: Trained, out_dir: Path) -> float:
    run = package(trained, out_dir, variants=())  # export + parity: the timed graph is checked
    return latency_per_sample_ms(run.onnx_path, trained.dataset)


def _exported_latency_ms(trained: Trained, out_dir: Path) -> float:
    """Export and time in a fresh process.

    With torch 2.13, the second dynamo export of an nn.GRU or nn.LSTM in one process fixes the
    sequence axis to the example's length (the first export keeps it dynamic), and the parity
    check then refuses the graph. A fresh interpreter per export sidesteps that state.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_export_and_time, trained, out_dir).result()


def run_compare(plan: ComparePlan, datasets: dict[str, Dataset] | None = None) -> Outcome:
    """Train the whole grid; the first seed of each pair is also exported and timed.

    `datasets` defaults to loading each of `plan.datasets`; tests pass tiny ones.
    """
    start = time.perf_counter()
    if datasets is None:
        check_plan(plan, {name: DATASET_KINDS[name] for name in plan.datasets})
        datasets = {name: load_dataset(name) for name in plan.datasets}
    else:
        check_plan(plan, {name: data.kind for name, data in datasets.items()})
    runs: list[SeedRun] = []
    latency: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="inductive-compare-") as scratch:
        for name, data in datasets.items():
            for arch in plan.archs_for(data):
                for seed in plan.seeds:
                    config = plan.config_for(name, seed)
                    trained = train_model(arch, data, config, val_fraction=VAL_FRACTION)
                    result = trained.result
                    runs.append(
                        SeedRun(
                            name,
                            arch,
                            seed,
                            parameter_count(trained.model),
                            result.best_val_accuracy,
                            accuracy(predict(trained.model, data.test), data.test.y),
                            result.best_epoch,
                            len(result.history),
                            result.train_time_s,
                        )
                    )
                    log.info("%s", runs[-1])
                    if seed == plan.seeds[0]:
                        # Latency depends on the graph, not the weights: one export per pair.
                        latency[(name, arch)] = _exported_latency_ms(
                            trained, Path(scratch) / f"{arch}-{name}"
                        )
    return Outcome(runs, summarise(runs, latency), time.perf_counter() - start)
