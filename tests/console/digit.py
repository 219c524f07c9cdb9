"""The digit pad's rule (service/console/static/js/digit.js), recomputed in Python: the tensor a
stroke must become, so that a test can compare it with what the page sent.

Canvas pixel (column i, row j) of the 280 × 280 pad is inked when its centre (i + 0.5, j + 0.5)
lies within 10 canvas pixels of a segment of the stroke; model pixel (r, c) is the inked share
of the 10 × 10 block at rows 10r…10r+9, columns 10c…10c+9. The arithmetic is the page's, in the
same order, in float64 as JavaScript's numbers are, so the results are equal, not just close.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

SIZE = 280
SCALE = 10
BRUSH_RADIUS = 10.0

Point = tuple[float, float]


def _segment(ink: np.ndarray, a: Point, b: Point) -> None:
    (ax, ay), (bx, by) = a, b
    r = BRUSH_RADIUS
    j, i = np.mgrid[0:SIZE, 0:SIZE]
    px, py = i + 0.5, j + 0.5
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = ((px - ax) * dx + (py - ay) * dy) / length2 if length2 > 0 else np.zeros_like(px)
    t = np.clip(t, 0.0, 1.0)
    qx = ax + t * dx - px
    qy = ay + t * dy - py
    ink |= qx * qx + qy * qy <= r * r


def ink(points: Sequence[Point]) -> np.ndarray:
    """(280, 280) bool: a stroke through `points` (canvas pixels), as the pad inks it."""
    out = np.zeros((SIZE, SIZE), dtype=bool)
    _segment(out, points[0], points[0])  # pointerdown
    for a, b in pairwise(points):
        _segment(out, a, b)
    return out


def tensor(inked: np.ndarray) -> np.ndarray:
    """(280, 280) ink → the model input (1, 1, 28, 28), float64 as the page computes it."""
    side = SIZE // SCALE
    counts = inked.reshape(side, SCALE, side, SCALE).sum(axis=(1, 3))
    return (counts / (SCALE * SCALE)).reshape(1, 1, side, side)
