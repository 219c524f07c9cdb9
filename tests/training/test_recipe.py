"""Recipes round-trip through JSON, refuse what they cannot hold, and fingerprint what matters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.augment import random_affine
from training.recipe import Recipe, RecipeError, recipe_of_manifest
from training.trainer import TrainConfig


def test_a_recipe_round_trips_through_json(tmp_path: Path) -> None:
    config = TrainConfig(epochs=3, lr=1e-3, seed=7, augment=random_affine, device="cpu")
    recipe = Recipe.of("cnn", "mnist", config, {"channels": (4, 8)}, 0.2, ("int8",))
    text = json.dumps(recipe.as_json())
    back = Recipe.from_json(json.loads(text))
    assert back == recipe
    assert back.model_config == {"channels": [4, 8]}
    rebuilt = back.train_config("cpu", tmp_path / "c.pt")
    assert (rebuilt.epochs, rebuilt.lr, rebuilt.seed) == (3, 1e-3, 7)
    assert rebuilt.augment is random_affine
    assert rebuilt.checkpoint_path == tmp_path / "c.pt"


def test_the_fingerprint_follows_what_changes_the_weights() -> None:
    recipe = Recipe.of("gru", "japanese_vowels", TrainConfig(device="cpu"))
    on_gpu = Recipe.of("gru", "japanese_vowels", TrainConfig(device="cuda", progress=True))
    assert recipe.fingerprint() == on_gpu.fingerprint()  # the device is not part of it
    assert recipe.with_epochs(1).fingerprint() != recipe.fingerprint()


def test_a_users_npz_is_recorded_by_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Recipe.of("cnn", "data.npz", TrainConfig()).dataset == str(tmp_path / "data.npz")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"arch": "cnn"}, "'dataset' must be a non-empty string"),
        ({"arch": "cnn", "dataset": "mnist", "epochs": "3"}, "'epochs' has the wrong type"),
        ({"arch": "cnn", "dataset": "mnist", "epochs": True}, "'epochs' has the wrong type"),
        ({"arch": "cnn", "dataset": "mnist", "colour": 1}, "unknown fields ['colour']"),
        ({"arch": "cnn", "dataset": "mnist", "augment": "flip"}, "unknown augmentation 'flip'"),
        ({"arch": "cnn", "dataset": "mnist", "variants": ["fp8"]}, "variants ['fp8']"),
    ],
)
def test_a_bad_recipe_is_one_clear_error(data: dict[str, object], message: str) -> None:
    with pytest.raises(RecipeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Recipe.from_json(data)


def test_a_manifest_without_a_recipe_says_how_to_get_one() -> None:
    with pytest.raises(RecipeError, match="cnn v1 records no training recipe"):
        recipe_of_manifest({"model_config": {"depth": "20"}}, "cnn v1")
