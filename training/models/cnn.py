"""Convolutional networks: the classic small MNIST CNN and a 1-D CNN for sequences."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from training.models.common import Standardize, masked_mean, padding_mask
from training.models.registry import register_model

# MNIST pixel statistics on the [0, 1] scale, the usual constants.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


class ClassicCNN(nn.Module):
    """28×28×1 → conv 3×3 (32) → 26×26×32 → conv 3×3 (64) → 24×24×64 → max-pool → dense → classes.

    Takes pixels in [0, 1]; standardisation is part of the model.
    """

    input_kind = "image"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,
        dropout: float = 0.25,
        mean: Sequence[float] = MNIST_MEAN,
        std: Sequence[float] = MNIST_STD,
    ) -> None:
        super().__init__()
        c1, c2 = channels
        pooled = (image_size - 4) // 2  # two unpadded 3×3 convs take 4 pixels, the pool halves
        self.norm = Standardize(mean, std, channel_dim=1)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3),  # (B, 32, 26, 26)
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3),  # (B, 64, 24, 24)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 12, 12)
            nn.Dropout(dropout),
        )
        self.head = nn.Sequential(
            nn.Flatten(),  # (B, 64·12·12)
            nn.Linear(c2 * pooled * pooled, hidden),
            nn.ReLU(),
            nn.Dropout(2 * dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(self.norm(x)))


class CNN1d(nn.Module):
    """Same-padded dilated 1-D convolutions over (B, T, C), then mean- and max-pooling over time.

    Padding positions are zeroed after every layer, so a padded batch computes exactly what each
    sequence computes alone (a same-padded convolution sees zeros beyond either end in both cases).
    """

    input_kind = "sequence"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: int = 64,
        kernel_size: int = 5,
        dilations: tuple[int, ...] = (1, 2, 4),
        dropout: float = 0.1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.norm = Standardize(
            mean or [0.0] * in_channels, std or [1.0] * in_channels, channel_dim=-1
        )
        channels = [in_channels] + [width] * len(dilations)
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2)
            for c_in, c_out, d in zip(channels[:-1], channels[1:], dilations, strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        pad = padding_mask(lengths, x.shape[1])  # (B, T)
        keep = (~pad).unsqueeze(1).to(x.dtype)  # (B, 1, T)
        h = self.norm(x).transpose(1, 2) * keep  # (B, C, T)
        for conv in self.convs:
            h = torch.relu(conv(h)) * keep  # (B, width, T)
        h = h.transpose(1, 2)  # (B, T, width)
        # Valid activations are ≥ 0 after ReLU and padding is 0, so a plain max ignores padding.
        pooled = torch.cat([masked_mean(h, pad), h.amax(dim=1)], dim=1)  # (B, 2·width)
        return self.head(self.dropout(pooled))


@register_model("image", tiny={"channels": (4, 8), "hidden": 16})
def cnn(**config: object) -> nn.Module:
    return ClassicCNN(**config)  # type: ignore[arg-type]


@register_model("sequence", tiny={"width": 8, "dilations": (1, 2)})
def cnn1d(**config: object) -> nn.Module:
    return CNN1d(**config)  # type: ignore[arg-type]
