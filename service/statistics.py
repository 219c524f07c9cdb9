"""Triton's statistics extension: per model version, what its requests and batches cost.

The numbers are the metrics' own (service/metrics.py): request outcomes and durations, queue
time, inference and execution counts are read from the children `/metrics` exposes, so the two
views cannot disagree. What Prometheus has no series for is kept here, per batch size: how many
batches of that size ran and how long each phase took, plus the time of the last inference.

The phases of a batch, as the batcher's worker thread times them:
- compute_input: assembling the requests' tensors into the batch (concatenating, padding ragged
  inputs, filling lengths);
- compute_infer: the ONNX Runtime run;
- compute_output: splitting the batch's outputs back into each request's results.
Encoding a response for its wire format happens afterwards, per request, and is part of that
request's success duration only.

As Triton does, `inference_stats.compute_*` count requests and charge each one its batch's whole
phase duration, while `batch_stats` count executions and their own durations. A batch that fails
and is retried request by request counts as those single-request runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.lifecycle.manager import ModelManager
    from service.metrics import VersionMetrics

Duration = dict[str, int]  # {"count": …, "ns": …}


@dataclass(slots=True)
class BatchTotals:
    """The executions of one batch size."""

    executions: int = 0
    requests: int = 0
    input_s: float = 0.0
    infer_s: float = 0.0
    output_s: float = 0.0
    # Σ over executions of (requests in it × its phase duration): Triton's per-request charge.
    charged_input_s: float = 0.0
    charged_infer_s: float = 0.0
    charged_output_s: float = 0.0


class BatchStatistics:
    """One version's executions by batch size (at most its max batch size entries); updated on
    the event loop when a batch completes."""

    __slots__ = ("by_size", "last_inference_ms")

    def __init__(self) -> None:
        self.by_size: dict[int, BatchTotals] = {}
        self.last_inference_ms = 0

    def record(
        self, samples: int, requests: int, input_s: float, infer_s: float, output_s: float
    ) -> None:
        totals = self.by_size.get(samples)
        if totals is None:
            totals = self.by_size[samples] = BatchTotals()
        totals.executions += 1
        totals.requests += requests
        totals.input_s += input_s
        totals.infer_s += infer_s
        totals.output_s += output_s
        totals.charged_input_s += requests * input_s
        totals.charged_infer_s += requests * infer_s
        totals.charged_output_s += requests * output_s
        self.last_inference_ms = time.time_ns() // 1_000_000


def _duration(count: float, seconds: float) -> Duration:
    return {"count": int(count), "ns": round(seconds * 1e9)}


def model_statistics(name: str, version: int, metrics: VersionMetrics) -> dict[str, Any]:
    """One `$model_stat` object of the statistics extension, Triton's JSON schema."""
    doors = metrics.by_protocol.values()
    succeeded = sum(door.outcomes["success"].value for door in doors)
    failed = sum(c.value for door in doors for o, c in door.outcomes.items() if o != "success")
    sizes = sorted(metrics.batches.by_size.items())
    requests = sum(t.requests for _, t in sizes)
    return {
        "name": name,
        "version": str(version),
        "last_inference": metrics.batches.last_inference_ms,
        "inference_count": int(metrics.inference_count.value),
        "execution_count": int(metrics.execution_count.value),
        "inference_stats": {
            "success": _duration(succeeded, sum(door.request_seconds.sum for door in doors)),
            "fail": _duration(failed, sum(door.failure_seconds.value for door in doors)),
            "queue": _duration(sum(metrics.queue_seconds.counts), metrics.queue_seconds.sum),
            "compute_input": _duration(requests, sum(t.charged_input_s for _, t in sizes)),
            "compute_infer": _duration(requests, sum(t.charged_infer_s for _, t in sizes)),
            "compute_output": _duration(requests, sum(t.charged_output_s for _, t in sizes)),
            # No response cache: nothing is ever served from one.
            "cache_hit": _duration(0, 0.0),
            "cache_miss": _duration(0, 0.0),
        },
        "batch_stats": [
            {
                "batch_size": size,
                "compute_input": _duration(t.executions, t.input_s),
                "compute_infer": _duration(t.executions, t.infer_s),
                "compute_output": _duration(t.executions, t.output_s),
            }
            for size, t in sizes
        ],
        "memory_usage": [],
    }


def statistics_report(
    manager: ModelManager, name: str | None = None, version: int | None = None
) -> dict[str, Any]:
    """`$stats_model_response`: every served version, those of model `name`, or one version
    (NotFoundError for an unknown model or version, as the other model routes)."""
    if name is not None and version is not None:
        served = [manager.lookup(name, version)]
    else:
        served = manager.served(name)
    return {"model_stats": [model_statistics(s.name, s.version, s.metrics) for s in served]}
