"""Training-time augmentation for images: small random shifts, rotations and scalings.

Handwritten digits keep their class under a few pixels of translation and a few degrees of
rotation; showing the model such variants is worth more than extra epochs on 4,000 samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def random_affine(
    x: Tensor,
    generator: torch.Generator,
    max_shift: float = 0.1,
    max_degrees: float = 10.0,
    max_scale: float = 0.1,
) -> Tensor:
    """x (B, C, H, W) → the same images, each moved by its own random affine map.

    `max_shift` is a fraction of the image size (0.1 of 28 px ≈ 3 px); borders fill with 0.
    """
    B = x.shape[0]

    def uniform(limit: float) -> Tensor:
        return (torch.rand(B, generator=generator) * 2 - 1) * limit  # (B,) in [-limit, limit]

    angle = uniform(math.radians(max_degrees))
    scale = 1 + uniform(max_scale)
    # affine_grid works in [-1, 1] coordinates, so a shift of s image-widths is 2s.
    shift_x, shift_y = 2 * uniform(max_shift), 2 * uniform(max_shift)
    cos, sin = angle.cos() / scale, angle.sin() / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
