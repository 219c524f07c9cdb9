"""Model definitions. Importing this package registers every architecture."""

from training.models import cnn, resnet, rnn, transformer  # noqa: F401  (registration)
from training.models.registry import (
    InputKind,
    ModelEntry,
    create_model,
    list_models,
    model_entry,
    register_model,
)

__all__ = [
    "InputKind",
    "ModelEntry",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
]
