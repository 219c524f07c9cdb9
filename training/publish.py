"""Turn a validated `Run` into a store version: manifest, serving config, model card, files."""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx
import torch

from model_store import ModelStore, onnx_signature, open_store
from model_store.schema import (
    BatchingConfig,
    Manifest,
    ModelConfig,
    Producer,
    RaggedInput,
    Variant,
)
from training.data import SEQUENCE_PAD_VALUE
from training.export import OPSET, OUTPUT_NAME, PARITY_TOLERANCE, ParityError
from training.pipeline import Run, describe_train_config

log = logging.getLogger(__name__)

CARD_FILE = "card.md"
PRODUCER = "inductive-training"
DEFAULT_MAX_BATCH_SIZE = 64


def _package_version() -> str | None:
    try:
        return metadata.version("inductive")
    except metadata.PackageNotFoundError:
        return None


def preprocessing(run: Run) -> dict[str, Any]:
    """What a client sends; standardisation happens inside the graph."""
    if run.dataset.kind == "image":
        return {"x": "FP32 [B, C, H, W], pixels scaled to [0, 1]; standardised inside the model"}
    return {
        "x": "FP32 [B, T, C], raw features zero-padded along T; standardised inside the model",
        "lengths": "INT64 [B], each sequence's true length (≥ 1)",
    }


def metrics_of(run: Run) -> dict[str, float]:
    result = run.train_result
    best = result.history[result.best_epoch - 1]
    return {
        "test_accuracy": run.test_accuracy,
        "val_accuracy": result.best_val_accuracy,
        "train_accuracy": best.train_accuracy,
        "parameters": float(run.parameters),
        "train_time_s": result.train_time_s,
        "best_epoch": float(result.best_epoch),
        "epochs_run": float(len(result.history)),
    }


def build_manifest(name: str, run: Run) -> Manifest:
    """The version's manifest; `files` and `version` are filled in by `store.publish`."""
    inputs, outputs = onnx_signature(run.onnx_path)
    variants = {
        v.precision: Variant(
            file=v.path.name,
            precision=v.precision,
            metrics={"test_accuracy": v.accuracy},
            accuracy_delta=v.accuracy_delta,
        )
        for v in run.variants
    }
    return Manifest(
        name=name,
        inputs=inputs,
        outputs=outputs,
        producer=Producer(
            package=PRODUCER,
            package_version=_package_version(),
            torch=torch.__version__,
            onnx=onnx.__version__,
            opset=OPSET,
        ),
        dataset=run.dataset.description,
        metrics=metrics_of(run),
        parity=run.parity.as_dict(),
        variants=variants,
        labels=run.dataset.labels,
        extra={
            "architecture": run.arch,
            "model_config": {k: repr(v) for k, v in run.model_config.items()},
            "train_config": describe_train_config(run.train_config),
            "preprocessing": preprocessing(run),
            "dataset_name": run.dataset.name,
        },
    )


def build_config(
    run: Run, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, existing: ModelConfig | None = None
) -> ModelConfig:
    """The model's serving config: batching, ragged `x` for sequence models, class labels.

    For a model already in the store, `existing` is its current config: a retrain then updates
    only what the run knows (ragged inputs, labels) and keeps what the operator chose — above
    all the version policy, so a retrain under a `stable` alias does not bypass the release gate.
    """
    ragged: tuple[RaggedInput, ...] = ()
    if run.dataset.kind == "sequence":
        ragged = (
            RaggedInput(input="x", axis=1, pad_value=SEQUENCE_PAD_VALUE, lengths_input="lengths"),
        )
    labels = {OUTPUT_NAME: run.dataset.labels}
    if existing is not None:
        return existing.model_copy(update={"ragged_inputs": ragged, "labels": labels})
    return ModelConfig(
        batching=BatchingConfig(max_batch_size=max_batch_size),
        ragged_inputs=ragged,
        labels=labels,
    )


def write_card(name: str, run: Run) -> None:
    """A short human-readable model card, published with the version."""
    lines = [
        f"# {name}",
        "",
        f"{run.arch} trained on {run.dataset.description}.",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {v:.4g} |" for k, v in metrics_of(run).items()),
        *(f"| parity {k} | {v:.3g} |" for k, v in run.parity.as_dict().items()),
        *(f"| {v.precision} accuracy (Δ) | {v.accuracy:.4f} ({v.accuracy_delta:+.4f}) |"
          for v in run.variants),
        "",
        f"Inputs: {preprocessing(run)}. Output `{OUTPUT_NAME}`: raw class logits.",
        "",
    ]  # fmt: skip
    (run.out_dir / CARD_FILE).write_text("\n".join(lines))


def publish_run(
    store: ModelStore | str | Path,
    name: str,
    run: Run,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> int:
    """Publish `run` as the next version of `name` in `store` (a path, URL or opened store)."""
    # A Run only exists once parity passed; check again so no caller can slip one through.
    figures = run.parity.as_dict()
    if not figures["max_abs_diff"] <= PARITY_TOLERANCE or figures["argmax_agreement"] < 1.0:
        raise ParityError(f"{name}: parity {figures} fails; refusing to publish")
    if isinstance(store, str | Path):
        store = open_store(store)
    write_card(name, run)
    existing = store.config(name) if name in store.list_models() else None
    version: int = store.publish(
        name, run.files(), build_manifest(name, run), build_config(run, max_batch_size, existing)
    )
    log.info("published %s version %d", name, version)
    return version
