"""A transformer encoder classifier over (B, T, C) with lengths (pre-norm blocks, nanoGPT-style).

Multi-head scaled dot-product self-attention, softmax(QKᵀ/√d_k)·V, with a key-padding mask built
from the lengths; sinusoidal positions; residual connections and layer norm; masked mean pooling.
Padding never reaches a valid position, so a padded batch equals one-by-one inference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from training.models.common import Standardize, masked_mean, padding_mask
from training.models.registry import register_model


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads, self.d_k = heads, d_model // heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 × (B, T, D)
        q, k, v = (t.view(B, T, self.heads, self.d_k).transpose(1, 2) for t in (q, k, v))
        # (B, h, T, d_k) each
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_k)  # (B, h, T, T)
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))  # no key is padding
        weights = self.dropout(scores.softmax(dim=-1))
        y = (weights @ v).transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ff), nn.GELU(), nn.Linear(ff, d_model), nn.Dropout(dropout)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        x = x + self.dropout(self.attn(self.ln1(x), pad))
        return x + self.mlp(self.ln2(x))


class SinusoidalPositions(nn.Module):
    """PE(t, 2i) = sin(t / 10000^(2i/d)), PE(t, 2i+1) = cos(…): any length, no parameters."""

    inv_freq: Tensor

    def __init__(self, d_model: int) -> None:
        super().__init__()
        inv_freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        self.register_buffer("inv_freq", inv_freq)  # (D/2,)

    def forward(self, x: Tensor) -> Tensor:
        # An integer range, then a cast: a float Range stays fp32 in fp16 conversion.
        t = torch.arange(x.shape[1], device=x.device).to(x.dtype).unsqueeze(1)  # (T, 1)
        angles = t * self.inv_freq  # (T, D/2)
        pe = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)  # (T, D), interleaved
        return x + pe


class TransformerClassifier(nn.Module):
    input_kind = "sequence"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff: int = 128,
        dropout: float = 0.1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if d_model % 2:
            raise ValueError(f"d_model {d_model} must be even (sin/cos position pairs)")
        self.norm = Standardize(
            mean or [0.0] * in_channels, std or [1.0] * in_channels, channel_dim=-1
        )
        self.embed = nn.Linear(in_channels, d_model)
        self.positions = SinusoidalPositions(d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, ff, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        pad = padding_mask(lengths, x.shape[1])  # (B, T)
        h = self.positions(self.embed(self.norm(x)))  # (B, T, D)
        for block in self.blocks:
            h = block(h, pad)
        return self.head(masked_mean(self.ln_f(h), pad))  # (B, classes)


@register_model("sequence", tiny={"d_model": 8, "heads": 2, "layers": 1, "ff": 16})
def transformer(**config: object) -> nn.Module:
    return TransformerClassifier(**config)  # type: ignore[arg-type]
