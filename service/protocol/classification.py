"""Triton's classification extension: top-k classes as BYTES `"score:index[:label]"`.

The score is written like C++'s `std::to_string(float)` (six decimals), as Triton does, so
clients that parse Triton's strings parse ours.
"""

from __future__ import annotations

import numpy as np


def classify(scores: np.ndarray, k: int, labels: tuple[str, ...] | None) -> np.ndarray:
    """(B, C) or (C,) scores → (B, k) or (k,) object array of bytes, best first."""
    flat = scores.reshape(1, -1) if scores.ndim == 1 else scores.reshape(scores.shape[0], -1)
    k = min(k, flat.shape[1])
    # argsort of the negated scores is stable, so ties keep the lower index first, as Triton does.
    top = np.argsort(-flat.astype(np.float64), axis=1, kind="stable")[:, :k]
    out = np.empty(top.shape, dtype=object)
    for row in range(top.shape[0]):
        for col in range(k):
            index = int(top[row, col])
            text = f"{float(flat[row, index]):f}:{index}"
            if labels is not None and index < len(labels):
                text = f"{text}:{labels[index]}"
            out[row, col] = text.encode()
    return out[0] if scores.ndim == 1 else out
