"""One registry for every model: `create_model(name, **config)`, variants as data (as in timm).

A constructor registers itself with `@register_model`; the registry records which inputs the model
takes ("image" or "sequence") so that data, export and serving configuration follow from the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

InputKind = Literal["image", "sequence"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[..., nn.Module]
    input_kind: InputKind
    # Small settings that build the model in a blink (tests, smoke runs).
    tiny_config: dict[str, Any]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    input_kind: InputKind, tiny: dict[str, Any] | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorator(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = build.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, build, input_kind, dict(tiny or {}))
        return build

    return decorator


def list_models(input_kind: InputKind | None = None) -> list[str]:
    return sorted(n for n, e in _REGISTRY.items() if input_kind in (None, e.input_kind))


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}") from None


def create_model(name: str, **config: Any) -> nn.Module:
    """Build a registered model; `config` overrides the constructor's defaults."""
    return model_entry(name).build(**config)
