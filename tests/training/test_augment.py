from __future__ import annotations

import torch

from training.augment import random_affine


def test_random_affine_is_seeded_and_identity_without_range() -> None:
    x = torch.rand(8, 1, 28, 28)
    same = random_affine(x, torch.Generator().manual_seed(0), 0.0, 0.0, 0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)

    a = random_affine(x, torch.Generator().manual_seed(1))
    b = random_affine(x, torch.Generator().manual_seed(1))
    c = random_affine(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.allclose(a, x, atol=1e-3)


def test_random_affine_moves_each_image_differently() -> None:
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 1.0  # the same square in both images
    moved = random_affine(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(moved[0], moved[1], atol=1e-3)
