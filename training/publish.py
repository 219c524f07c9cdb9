"""Turn a validated `Run` into a store version: manifest, serving config, model card, files."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx
import torch

from model_store import ModelStore, StoreError, onnx_signature, open_store
from model_store.hashing import sha256_file
from model_store.schema import (
    BatchingConfig,
    Manifest,
    ModelConfig,
    Producer,
    RaggedInput,
    Variant,
)
from training.data import SEQUENCE_PAD_VALUE
from training.evaluation import EvaluationSet, frozen_evaluation_set
from training.export import MODEL_FILE, OPSET, OUTPUT_NAME, PARITY_TOLERANCE, ParityError
from training.pipeline import Run, describe_train_config
from training.recipe import Recipe, json_value
from training.shards_data import DataFingerprint

log = logging.getLogger(__name__)

CARD_FILE = "card.md"
PRODUCER = "inductive-training"
DEFAULT_MAX_BATCH_SIZE = 64
# A sequence model is published with a max_length of this many times its longest training
# sequence (rounded up to a power of two): room for longer inputs than it saw, and a bound on
# what one request can cost a model quadratic in the length.
SEQUENCE_LENGTH_HEADROOM = 8
# The files that hold a version's weights: the graph and the dynamo exporter's external data.
# The fp16/int8 variants are computed from them, so they change only when these do.
WEIGHT_FILES = (MODEL_FILE, f"{MODEL_FILE}.data")


class UnchangedArtifactError(StoreError):
    """The artifact is byte-for-byte a version the model already has: publishing it again would
    make a second number for the same model."""


@dataclass(frozen=True)
class Provenance:
    """What a version was trained from, and for a retrain how it fared against the champion."""

    recipe: Recipe
    data: DataFingerprint
    gate: dict[str, Any] | None = None  # the retrain gate's figures (training/retrain.py)
    forced: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def weights_digest(files: dict[str, str]) -> dict[str, str]:
    """{weight file: sha256} out of {file: sha256}."""
    return {key: digest for key, digest in files.items() if key in WEIGHT_FILES}


def run_weights(run: Run) -> dict[str, str]:
    return weights_digest({key: sha256_file(path)[0] for key, path in run.files().items()})


def version_weights(store: ModelStore, name: str, version: int) -> dict[str, str]:
    return weights_digest({f.path: f.sha256 for f in store.manifest(name, version).files})


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


def build_manifest(
    name: str,
    run: Run,
    provenance: Provenance | None = None,
    evaluation: EvaluationSet | None = None,
) -> Manifest:
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
            "model_config": json_value(run.model_config),
            "train_config": describe_train_config(run.train_config),
            "preprocessing": preprocessing(run),
            "dataset_name": run.dataset.name,
            **({} if evaluation is None else {"evaluation_set": evaluation.as_dict()}),
            **({} if provenance is None else provenance_fields(provenance)),
        },
    )


def provenance_fields(provenance: Provenance) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "recipe": provenance.recipe.as_json(),
        "recipe_fingerprint": provenance.recipe.fingerprint(),
        "dataset_fingerprint": provenance.data.as_dict(),
        "forced": provenance.forced,
        **provenance.extra,
    }
    if provenance.gate is not None:
        fields["gate"] = provenance.gate
    return fields


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
        longest = run.dataset.longest_sequence()
        max_length = 1 << (SEQUENCE_LENGTH_HEADROOM * longest - 1).bit_length()
        before = _ragged_x(existing)
        if before is not None and before.max_length is not None:
            max_length = max(before.max_length, longest)  # the operator's, if it still fits
        ragged = (
            RaggedInput(
                input="x", axis=1, pad_value=SEQUENCE_PAD_VALUE, lengths_input="lengths",
                max_length=max_length,
            ),
        )  # fmt: skip
    labels = {OUTPUT_NAME: run.dataset.labels}
    if existing is not None:
        return existing.model_copy(update={"ragged_inputs": ragged, "labels": labels})
    return ModelConfig(
        batching=BatchingConfig(max_batch_size=max_batch_size),
        ragged_inputs=ragged,
        labels=labels,
    )


def _ragged_x(config: ModelConfig | None) -> RaggedInput | None:
    if config is None:
        return None
    return next((r for r in config.ragged_inputs if r.input == "x"), None)


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


def refuse_unchanged(store: ModelStore, name: str, run: Run) -> None:
    """UnchangedArtifactError when the run's weights are those of the model's newest version."""
    versions = store.list_versions(name)
    if not versions:
        return
    newest = versions[-1]
    if run_weights(run) == version_weights(store, name, newest):
        raise UnchangedArtifactError(
            f"{name}: the trained weights are byte-identical to version {newest}; not published"
        )


def publish_run(
    store: ModelStore | str | Path,
    name: str,
    run: Run,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    provenance: Provenance | None = None,
) -> int:
    """Publish `run` as the next version of `name` in `store` (a path, URL or opened store).

    Raises UnchangedArtifactError, publishing nothing, when the weights are byte-identical to
    the newest version's. The first version of a model freezes its evaluation set (the run's
    test split); every version records that set's sha256.
    """
    # A Run only exists once parity passed; check again so no caller can slip one through.
    figures = run.parity.as_dict()
    if not figures["max_abs_diff"] <= PARITY_TOLERANCE or figures["argmax_agreement"] < 1.0:
        raise ParityError(f"{name}: parity {figures} fails; refusing to publish")
    if isinstance(store, str | Path):
        store = open_store(store)
    refuse_unchanged(store, name, run)
    evaluation = frozen_evaluation_set(store, name, run.dataset.test)
    write_card(name, run)
    existing = store.config(name) if name in store.list_models() else None
    manifest = build_manifest(name, run, provenance, evaluation)
    version: int = store.publish(
        name, run.files(), manifest, build_config(run, max_batch_size, existing)
    )
    log.info("published %s version %d", name, version)
    return version
