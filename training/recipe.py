"""The training recipe: everything needed to train a model again, as JSON values.

A version's manifest carries its recipe (`extra.recipe`); `python -m training retrain` reads it
back from the champion and trains the challenger with it. Only what changes the trained weights
is part of it: the device, the run directory and the progress bar are not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from training.augment import random_affine
from training.trainer import TrainConfig
from training.variants import Precision

# Augmentations a recipe may name (a function is recorded by name, never pickled).
AUGMENTATIONS: dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {
    "random_affine": random_affine,
}
PRECISIONS: tuple[Precision, ...] = ("fp16", "int8")
# The TrainConfig fields a recipe records.
_TRAIN_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "grad_clip", "seed")


class RecipeError(ValueError):
    """A manifest without a usable recipe (one line saying what is missing or wrong)."""


def json_value(value: Any) -> Any:
    """`value` as plain JSON data (tuples become lists); RecipeError if it has no JSON form."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    raise RecipeError(f"{value!r} ({type(value).__name__}) has no JSON form for a recipe")


@dataclass(frozen=True)
class Recipe:
    arch: str  # as resolved for the dataset (cnn1d, not cnn, on sequences)
    dataset: str  # a bundled dataset's name, or an absolute path to a .npz
    model_config: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-2
    patience: int = 5
    grad_clip: float = 1.0
    seed: int = 0
    augment: str | None = None
    val_fraction: float = 0.1
    variants: tuple[Precision, ...] = PRECISIONS

    @classmethod
    def of(
        cls,
        arch: str,
        dataset: str,
        config: TrainConfig,
        model_config: Mapping[str, Any] | None = None,
        val_fraction: float = 0.1,
        variants: tuple[Precision, ...] = PRECISIONS,
    ) -> Recipe:
        """The recipe of a run trained with these settings."""
        augment = None
        if config.augment is not None:
            named = [n for n, f in AUGMENTATIONS.items() if f is config.augment]
            if not named:
                raise RecipeError(f"augmentation {config.augment!r} has no recipe name")
            augment = named[0]
        source = str(Path(dataset).resolve()) if dataset.endswith(".npz") else dataset
        settings = {name: getattr(config, name) for name in _TRAIN_FIELDS}
        return cls(
            arch=arch,
            dataset=source,
            model_config=json_value(dict(model_config or {})),
            augment=augment,
            val_fraction=val_fraction,
            variants=tuple(variants),
            **settings,
        )

    def train_config(self, device: str = "auto", checkpoint: Path | None = None) -> TrainConfig:
        settings = {name: getattr(self, name) for name in _TRAIN_FIELDS}
        augment = None if self.augment is None else AUGMENTATIONS[self.augment]
        return TrainConfig(**settings, augment=augment, device=device, checkpoint_path=checkpoint)

    def with_epochs(self, epochs: int) -> Recipe:
        return replace(self, epochs=epochs)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json_value(
            {name: getattr(self, name) for name in self.__dataclass_fields__}
        )
        return data

    def fingerprint(self) -> str:
        """sha256 of the recipe's canonical JSON (sorted keys, no spaces)."""
        text = json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_json(cls, data: Any) -> Recipe:
        """A recipe read back from a manifest; RecipeError naming the first field that is wrong."""
        if not isinstance(data, dict):
            raise RecipeError(f"recipe must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise RecipeError(f"recipe has unknown fields {unknown}")
        for name in ("arch", "dataset"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise RecipeError(f"recipe field {name!r} must be a non-empty string")
        checks: dict[str, tuple[type, ...]] = {
            "epochs": (int,), "batch_size": (int,), "patience": (int,), "seed": (int,),
            "lr": (int, float), "weight_decay": (int, float), "grad_clip": (int, float),
            "val_fraction": (int, float), "model_config": (dict,), "variants": (list,),
        }  # fmt: skip
        for name, kinds in checks.items():
            if name in data and (not isinstance(data[name], kinds) or isinstance(data[name], bool)):
                raise RecipeError(f"recipe field {name!r} has the wrong type: {data[name]!r}")
        augment = data.get("augment")
        if augment is not None and augment not in AUGMENTATIONS:
            raise RecipeError(f"recipe names unknown augmentation {augment!r}")
        variants = tuple(data.get("variants", PRECISIONS))
        if any(v not in PRECISIONS for v in variants):
            raise RecipeError(f"recipe variants {list(variants)} must be among {list(PRECISIONS)}")
        return cls(**{**data, "variants": variants})


def recipe_of_manifest(extra: Mapping[str, Any], where: str) -> Recipe:
    """The recipe in a manifest's `extra`; RecipeError when it has none (published by hand, or
    before recipes were recorded)."""
    if "recipe" not in extra:
        raise RecipeError(
            f"{where} records no training recipe (published with `model_store add`, or before "
            "recipes were recorded): retrain it with `python -m training train --publish` first"
        )
    try:
        return Recipe.from_json(extra["recipe"])
    except RecipeError as exc:
        raise RecipeError(f"{where}: {exc}") from None
