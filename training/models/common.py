"""Pieces shared by the models: input standardisation and masks from sequence lengths."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Standardize(nn.Module):
    """(x - mean) / std per channel, stored with the weights so the ONNX graph takes raw inputs.

    `channel_dim` is 1 for images (B, C, H, W) and -1 for sequences (B, T, C).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float], channel_dim: int) -> None:
        super().__init__()
        shape = [1, len(mean), 1, 1] if channel_dim == 1 else [1, 1, len(mean)]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """True where a position is padding: (B, T) from lengths (B,)."""
    positions = torch.arange(max_len, device=lengths.device).unsqueeze(0)  # (1, T)
    return positions >= lengths.unsqueeze(1)  # (B, T)


def last_valid_step(outputs: Tensor, lengths: Tensor) -> Tensor:
    """outputs (B, T, H) → (B, H) at index lengths - 1 of each row (a causal model's summary)."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])  # (B, 1, H)
    return outputs.gather(1, index).squeeze(1)  # (B, H)


def masked_mean(x: Tensor, pad: Tensor) -> Tensor:
    """Mean over valid time steps: x (B, T, C), pad (B, T) → (B, C)."""
    keep = (~pad).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    # Lengths are ≥ 1 by contract, so the count is never 0. (A clamp here would become a Clip
    # whose fp32 bounds the fp16 converter leaves behind.)
    return (x * keep).sum(1) / keep.sum(1)
