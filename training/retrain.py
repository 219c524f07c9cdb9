"""The retrain gate: a retrain earns its version.

`retrain` reads the champion's recipe, trains a challenger on the same base data plus any new
labelled shards, judges both ONNX artifacts on the model's frozen evaluation set, and publishes
the challenger only when its weights differ from the champion's and an exact one-sided McNemar
test does not show it worse (training/README.md states the rule). Unchanged data and recipe
skip training altogether.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from model_store import ModelStore, StoreError
from model_store.policy import champion
from training.data import load_dataset
from training.evaluation import EvaluationSet, correct_answers, frozen_evaluation_set
from training.export import MODEL_FILE
from training.pipeline import package, train_model
from training.publish import (
    Provenance,
    UnchangedArtifactError,
    publish_run,
    run_weights,
    version_weights,
)
from training.recipe import Recipe, recipe_of_manifest
from training.shards_data import DataFingerprint, data_fingerprint, load_shards, with_shards
from training.stats import PairedComparison, compare_paired

log = logging.getLogger(__name__)

ALPHA = 0.05
Outcome = Literal["published", "kept"]


@dataclass(frozen=True)
class RetrainResult:
    outcome: Outcome
    message: str  # the one line the CLI prints
    champion: int
    version: int | None = None  # the published version
    comparison: PairedComparison | None = None


def _gate_line(comparison: PairedComparison) -> str:
    return (
        f"accuracy {comparison.champion_accuracy:.4f} → {comparison.challenger_accuracy:.4f} on "
        f"{comparison.samples} frozen samples, McNemar exact b={comparison.b} c={comparison.c} "
        f"one-sided p={comparison.p_worse:.3g} (alpha {comparison.alpha})"
    )


def _check_evaluation_set(
    store: ModelStore, name: str, version: int, frozen: EvaluationSet
) -> None:
    """The champion was judged on the same set (when it recorded one): the store's copy must not
    have been replaced since."""
    recorded = store.manifest(name, version).extra.get("evaluation_set", {}).get("sha256")
    if recorded is not None and recorded != frozen.sha256:
        raise StoreError(
            f"{name}: the stored evaluation set (sha256 {frozen.sha256[:12]}…) is not the one "
            f"v{version} recorded ({recorded[:12]}…); it was replaced, so accuracies no longer pair"
        )


def retrain(
    store: ModelStore,
    name: str,
    data_uri: str | None = None,
    *,
    epochs: int | None = None,
    force: bool = False,
    device: str = "auto",
    alpha: float = ALPHA,
) -> RetrainResult:
    """Run the gate for `name`; raises StoreError / ValueError (one line) on bad input."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"--alpha {alpha}: the test's level must lie strictly between 0 and 1")
    best = champion(store, name)
    manifest = store.manifest(name, best)
    recipe: Recipe = recipe_of_manifest(manifest.extra, f"{name} v{best}")
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"--epochs {epochs}: train at least one epoch")
        recipe = recipe.with_epochs(epochs)
    base = load_dataset(recipe.dataset)
    shards = load_shards(data_uri, base) if data_uri else []
    data: DataFingerprint = data_fingerprint(base, shards)
    recorded_data = manifest.extra.get("dataset_fingerprint", {}).get("fingerprint")
    unchanged = (
        recorded_data == data.fingerprint
        and manifest.extra.get("recipe_fingerprint") == recipe.fingerprint()
    )
    if unchanged and not force:
        return RetrainResult(
            "kept",
            f"{name}: champion v{best} kept: data and recipe unchanged since it was trained "
            f"(dataset {data.fingerprint[:12]}…, recipe {recipe.fingerprint()[:12]}…); "
            "nothing trained, nothing published",
            best,
        )
    frozen = frozen_evaluation_set(store, name, base.test)
    _check_evaluation_set(store, name, best, frozen)
    with tempfile.TemporaryDirectory(prefix="inductive-retrain-") as tmp:
        champion_dir = store.materialize(name, best, Path(tmp) / "champion")
        champion_right = correct_answers(champion_dir / manifest.model_file, frozen.split)
        log.info("training the challenger (%s, %d shard(s))", recipe.arch, len(shards))
        trained = train_model(
            recipe.arch,
            with_shards(base, shards),
            recipe.train_config(device),
            dict(recipe.model_config),
            recipe.val_fraction,
        )
        run = package(trained, Path(tmp) / "challenger", recipe.variants)
        if run_weights(run) == version_weights(store, name, best):
            return RetrainResult(
                "kept",
                f"{name}: champion v{best} kept: the challenger's weights are byte-identical "
                "to the champion's; nothing published",
                best,
            )
        comparison = compare_paired(
            champion_right, correct_answers(run.out_dir / MODEL_FILE, frozen.split), alpha
        )
        if not comparison.not_worse and not force:
            return RetrainResult(
                "kept",
                f"{name}: champion v{best} kept: the challenger is worse, "
                f"{_gate_line(comparison)}; nothing published",
                best,
                comparison=comparison,
            )
        gate = {"champion_version": best, **comparison.as_dict(), "forced": force}
        provenance = Provenance(recipe, data, gate=gate, forced=force)
        try:
            version = publish_run(store, name, run, provenance=provenance)
        except UnchangedArtifactError as exc:  # identical to a newer version than the champion
            return RetrainResult("kept", f"champion v{best} kept: {exc}", best, None, comparison)
    verdict = "forced (--force), " if force else ""
    return RetrainResult(
        "published",
        f"{name}: published v{version}, {verdict}{_gate_line(comparison)}",
        best,
        version,
        comparison,
    )
