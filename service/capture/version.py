"""What a served version does with its answers when capture is on: sample, bound, queue.

Called on the event loop once a request's answer is ready; it never blocks and never raises into
the request: a request that is not captured (not drawn, over the rate bound, queue full, capture
stopped) costs a draw, at most a few comparisons and a counter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from model_store.schema import RaggedInput
from service.capture.shards import Captured
from service.metrics import CaptureMetrics
from service.model_io.signature import ModelSignature

if TYPE_CHECKING:
    from service.capture.writer import CaptureWriter

_FLOATS = ("FP16", "FP32", "FP64")


def capturable_input(
    signature: ModelSignature, ragged_inputs: tuple[RaggedInput, ...]
) -> tuple[str, RaggedInput | None] | str:
    """The input a shard's `x` holds (and its ragged axis, for sequences), or why the model's
    requests do not fit a shard: one float input besides those the server fills, of fixed size
    but for the batch axis and a sequence axis 1, and outputs of fixed size but for the batch."""
    sent = [spec for name, spec in signature.inputs.items() if name not in signature.server_filled]
    if len(sent) != 1:
        return f"it takes {len(sent)} inputs; a shard's x holds one"
    spec = sent[0]
    if spec.datatype not in _FLOATS:
        return f"its input '{spec.name}' is {spec.datatype}; a shard's x is float"
    if not signature.batched:
        return "it has no batch axis"
    ragged = next((r for r in ragged_inputs if r.input == spec.name), None)
    if ragged is not None and ragged.axis != 1:
        return f"'{spec.name}' varies along axis {ragged.axis}; shards hold sequences on axis 1"
    fixed = [d for axis, d in enumerate(spec.shape) if axis > 0 and not (ragged and axis == 1)]
    if -1 in fixed:
        return f"'{spec.name}' {list(spec.shape)} varies in size beyond the batch axis"
    for out in signature.outputs.values():
        if out.datatype == "BYTES" or -1 in out.shape[1:]:
            return f"its output '{out.name}' ({out.datatype} {list(out.shape)}) has no fixed size"
    return spec.name, ragged


class VersionCapture:
    """Capture of one served version's traffic; built by the model manager when it loads it."""

    __slots__ = ("_draw", "input_name", "metrics", "model", "ragged", "rate", "version", "writer")

    def __init__(
        self,
        writer: CaptureWriter,
        model: str,
        version: int,
        input_name: str,
        ragged: RaggedInput | None,
        metrics: CaptureMetrics,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.writer = writer
        self.model = model
        self.version = version
        self.input_name = input_name
        self.ragged = ragged
        self.rate = writer.sample_rate
        self.metrics = metrics
        self._draw = draw

    def offer(
        self, inputs: dict[str, np.ndarray], results: dict[str, np.ndarray], rid: str | None
    ) -> None:
        """The request was answered with `results`: capture it, or not."""
        if self._draw() >= self.rate:
            return
        x = inputs[self.input_name]
        if not x.size:
            return  # an empty batch or sequence: nothing to learn from
        size = x.nbytes + sum(out.nbytes for out in results.values())
        refused = self.writer.admit(len(x), size)
        if refused is not None:
            self.metrics.requests[refused].inc()
            return
        self.writer.put(Captured(self, inputs, results, rid or "", time.time(), len(x), size))
        self.metrics.requests["queued"].inc()
