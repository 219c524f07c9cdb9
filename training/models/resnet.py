"""Residual networks for 28×28 inputs, CIFAR-style: depth = 6n + 2 (8, 14, 20, …).

A stem convolution, three stages of `n` basic blocks (16, 32, 64 channels; the last two halve the
resolution), global average pooling and a linear classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from training.models.cnn import MNIST_MEAN, MNIST_STD
from training.models.common import Standardize
from training.models.registry import register_model


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    # No bias: batch norm right after supplies it.
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """relu(F(x) + shortcut(x)), F = conv-bn-relu-conv-bn; a 1×1 projection when shapes change."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class ResNet(nn.Module):
    input_kind = "image"

    def __init__(
        self,
        depth: int = 8,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: tuple[int, int, int] = (16, 32, 64),
        mean: Sequence[float] = MNIST_MEAN,
        std: Sequence[float] = MNIST_STD,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"resnet depth {depth}: must be 6n + 2 with n ≥ 1 (8, 14, 20, …)")
        del image_size  # any size works: global pooling; accepted so callers can pass it uniformly
        blocks_per_stage = (depth - 2) // 6
        self.norm = Standardize(mean, std, channel_dim=1)
        self.stem = nn.Sequential(
            conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )  # (B, 16, 28, 28)
        stages: list[nn.Module] = []
        c_in = widths[0]
        for i, width in enumerate(widths):
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1  # (B, 32, 14, 14) then (B, 64, 7, 7)
                stages.append(BasicBlock(c_in, width, stride))
                c_in = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)  # (B, 64, 1, 1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stages(self.stem(self.norm(x)))
        return self.fc(self.pool(h).flatten(1))


@register_model("image", tiny={"widths": (4, 8, 8)})
def resnet(**config: object) -> nn.Module:
    return ResNet(**{"depth": 8, **config})  # type: ignore[arg-type]


@register_model("image", tiny={"widths": (4, 8, 8)})
def resnet20(**config: object) -> nn.Module:
    return ResNet(**{"depth": 20, **config})  # type: ignore[arg-type]
