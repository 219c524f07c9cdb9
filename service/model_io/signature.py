"""What a served model accepts: its inputs and outputs plus the serving config that shapes them."""

from __future__ import annotations

from dataclasses import dataclass

from model_store.schema import Manifest, ModelConfig, TensorSpec


@dataclass(frozen=True, slots=True)
class ModelSignature:
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    # Inputs the server fills itself for ragged batching (lengths, mask): a client may omit them.
    server_filled: frozenset[str]
    # Ragged input name → its variable axis, and the longest that axis may be (when limited).
    ragged_axes: dict[str, int]
    ragged_max_lengths: dict[str, int]
    # True when every input and output has a dynamic first (batch) axis.
    batched: bool
    max_batch_size: int
    reject_non_finite: bool
    labels: dict[str, tuple[str, ...]]

    @classmethod
    def build(
        cls,
        manifest: Manifest,
        config: ModelConfig,
        max_batch_size: int,
        default_max_length: int | None = None,
    ) -> ModelSignature:
        """`default_max_length` bounds the ragged inputs whose config sets no max_length."""
        tensors = (*manifest.inputs, *manifest.outputs)
        batched = all(len(t.shape) >= 1 and t.shape[0] == -1 for t in tensors)
        labels = dict(config.labels)
        if manifest.labels and len(manifest.outputs) == 1:
            labels.setdefault(manifest.outputs[0].name, manifest.labels)
        filled: set[str] = set()
        for r in config.ragged_inputs:
            filled.update(n for n in (r.lengths_input, r.mask_input) if n is not None)
        return cls(
            inputs={t.name: t for t in manifest.inputs},
            outputs={t.name: t for t in manifest.outputs},
            server_filled=frozenset(filled),
            ragged_axes={r.input: r.axis for r in config.ragged_inputs},
            ragged_max_lengths={
                r.input: limit
                for r in config.ragged_inputs
                if (limit := r.max_length or default_max_length) is not None
            },
            batched=batched,
            max_batch_size=max_batch_size if batched else 1,
            reject_non_finite=config.reject_non_finite_inputs,
            labels=labels,
        )
