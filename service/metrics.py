"""Every Prometheus metric of the service, defined once, with bounded label sets.

Labels are `model` and `version` of *served* versions only (names come from the store, never from
a client's URL; a canary's are `champion` and `candidate`), plus small closed sets
(`protocol`, `outcome`, `state`, `reason`). Each served version gets a `VersionMetrics` holding
its label children, and each shadow and captured version theirs, so the hot path never looks
labels up. What a request's front door decides (its outcome and duration) is labelled by `protocol`;
what its batch decides (queue time, compute, batch size, counts) is shared: HTTP and gRPC
requests batch together.

The counters and histograms a request or a batch updates are observed on the event loop only
(`LoopCounter`, `LoopHistogram`), and the statistics extension (service/statistics.py) reads the
same children: the two views are made of the same numbers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.loop_counter import LoopCounter, LoopCounterChild
from service.loop_histogram import LoopHistogram, LoopHistogramChild
from service.statistics import BatchStatistics

log = logging.getLogger(__name__)

PROTOCOLS = ("http", "grpc")
OUTCOMES = ("success", "bad_request", "unavailable", "timeout", "error")
MODEL_STATES = ("LOADING", "READY", "UNLOADING", "UNAVAILABLE", "FAILED")
REJECT_REASONS = (
    "not_found", "unauthorized", "forbidden", "too_large", "not_ready", "bad_request",
    "overloaded",  # past the connection limit
)  # fmt: skip

# Latency buckets from 100 µs to 10 s: the cnn model computes a sample in ≈ 0.3 ms batched.
_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Mean absolute difference between a shadow candidate's outputs and the champion's: from float
# rounding (an fp16 variant) to a different model altogether.
_DIFF_BUCKETS = (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SHADOW_OUTCOMES = ("compared", "dropped", "failed")
CAPTURE_OUTCOMES = ("queued", "rate_limited", "queue_full", "stopped")
CAPTURE_SAMPLE_OUTCOMES = ("written", "failed", "over_size")


class Metrics:
    """The registry of one server process (tests build one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        mv = ("model", "version")
        self.requests = LoopCounter(
            "inductive_inference_requests",
            "Inference requests by front door (protocol) and outcome.",
            (*mv, "protocol", "outcome"),
            registry=r,
        )
        self.request_seconds = LoopHistogram(
            "inductive_inference_request_duration_seconds",
            "Time from a request's body being read to its successful response being ready.",
            (*mv, "protocol"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.failure_seconds = LoopCounter(
            "inductive_inference_failure_duration_seconds",
            "Time from a request's body being read to its error being ready, summed over the "
            "requests that reached a served version and failed.",
            (*mv, "protocol"),
            registry=r,
        )
        self.queue_seconds = LoopHistogram(
            "inductive_inference_queue_duration_seconds",
            "Time a request waited in its version's queue before its batch started.",
            mv,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_seconds = LoopHistogram(
            "inductive_inference_compute_duration_seconds",
            "Time per executed batch: assembling its inputs, the ONNX Runtime run, splitting "
            "its outputs.",
            mv,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = LoopHistogram(
            "inductive_inference_batch_size",
            "Samples per executed batch.",
            mv,
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "inductive_inference_queue_depth",
            "Requests waiting in a version's queue.",
            mv,
            registry=r,
        )
        self.inference_count = LoopCounter(
            "inductive_inference_count",
            "Samples inferred (a request with batch 4 counts 4).",
            mv,
            registry=r,
        )
        self.execution_count = LoopCounter(
            "inductive_inference_exec_count",
            "Batches executed by ONNX Runtime; inference_count / exec_count is the mean batch.",
            mv,
            registry=r,
        )
        self.load_seconds = Gauge(
            "inductive_model_load_duration_seconds",
            "How long the last load of a version took (verify, session, warm-up).",
            mv,
            registry=r,
        )
        self.model_state = Gauge(
            "inductive_model_state", "1 for the state a version is in.", (*mv, "state"), registry=r
        )
        self.load_failures = Counter(
            "inductive_model_load_failures", "Versions that failed to load.", ("model",), registry=r
        )
        self.store_poll_failures = Counter(
            "inductive_store_poll_failures",
            "Store polls that failed (store unreachable).",
            registry=r,
        )
        # Lifecycle edges (service/lifecycle/removal.py, service/lifecycle/offline.py).
        self.models_removed = Counter(
            "inductive_models_removed",
            "Models unloaded because they were gone from the store for the removal grace period.",
            ("model",),
            registry=r,
        )
        self.serving_from_cache = Gauge(
            "inductive_serving_from_cache",
            "1 while the server, started during a store outage, serves only the versions of its "
            "verified cache; 0 once it has caught up with the store.",
            registry=r,
        )
        self.rejected = Counter(
            "inductive_requests_rejected",
            "Requests refused before reaching a model, by front door (protocol) and reason.",
            ("protocol", "reason"),
            registry=r,
        )
        for protocol in PROTOCOLS:
            for reason in REJECT_REASONS:
                self.rejected.labels(protocol, reason)
        self._canary_metrics(r)
        self._capture_metrics(r)

    def _canary_metrics(self, r: CollectorRegistry) -> None:
        self._canaries: dict[str, tuple[str, str, str]] = {}  # model → its canary gauges' labels
        pair = ("model", "champion", "candidate")
        self.canary_weight = Gauge(
            "inductive_canary_weight_ratio",
            "Share of the requests naming no version that a canary's candidate answers.",
            pair,
            registry=r,
        )
        self.canary_mirror = Gauge(
            "inductive_canary_mirror_ratio",
            "Share of the champion's requests also run on the candidate (shadow), only compared.",
            pair,
            registry=r,
        )
        self.shadow_requests = Counter(
            "inductive_shadow_requests",
            "Champion requests picked for the shadow: compared with the candidate's answer, "
            "dropped (the candidate was behind, or the champion gave no answer) or failed (the "
            "candidate failed, or answered in other shapes).",
            (*pair, "outcome"),
            registry=r,
        )
        self.shadow_samples = Counter(
            "inductive_shadow_samples",
            "Samples compared between champion and candidate (outputs with a class axis).",
            pair,
            registry=r,
        )
        self.shadow_agreement = Counter(
            "inductive_shadow_agreement_samples",
            "Compared samples whose argmax (last axis) is the same for champion and candidate; "
            "agreement = this / inductive_shadow_samples_total.",
            pair,
            registry=r,
        )
        self.shadow_abs_diff = LoopHistogram(
            "inductive_shadow_mean_abs_diff",
            "Per compared request, the mean absolute difference of the numeric outputs.",
            pair,
            buckets=_DIFF_BUCKETS,
            registry=r,
        )

    def _capture_metrics(self, r: CollectorRegistry) -> None:
        self.capture_requests = Counter(
            "inductive_capture_requests",
            "Requests sampled for capture: queued for the writer, or dropped (rate bound, full "
            "queue, capture stopped at its size bound).",
            ("model", "version", "outcome"),
            registry=r,
        )
        self.capture_samples = Counter(
            "inductive_capture_samples",
            "Captured samples: written in a shard, lost with a shard that failed to write, or "
            "dropped at the size bound.",
            ("model", "version", "outcome"),
            registry=r,
        )
        self.capture_shards = Counter(
            "inductive_capture_shards", "Shards written or failed.", ("outcome",), registry=r
        )
        self.capture_bytes = Counter(
            "inductive_capture_written_bytes", "Bytes of shards written.", registry=r
        )
        self.capture_stopped = Gauge(
            "inductive_capture_stopped",
            "1 once capture stopped at its size bound (INDUCTIVE_CAPTURE_MAX_BYTES).",
            registry=r,
        )
        self.capture_skipped = Counter(
            "inductive_capture_skipped_versions",
            "Loaded versions not captured: their inputs are not one float tensor (a sequence "
            "padded along axis 1 allowed) or their outputs' sizes vary.",
            ("model",),
            registry=r,
        )
        for outcome in ("written", "failed"):
            self.capture_shards.labels(outcome)

    def enable_gpu(self, device_id: int) -> None:
        """Adds GPU memory and utilisation gauges (called once a GPU provider serves)."""
        collector = _gpu_collector(device_id)
        if collector is not None:
            self.registry.register(collector)

    def for_version(self, model: str, version: int) -> VersionMetrics:
        v = str(version)
        return VersionMetrics(
            by_protocol={
                p: RequestMetrics(
                    outcomes={o: self.requests.labels(model, v, p, o) for o in OUTCOMES},
                    request_seconds=self.request_seconds.labels(model, v, p),
                    failure_seconds=self.failure_seconds.labels(model, v, p),
                )
                for p in PROTOCOLS
            },
            queue_seconds=self.queue_seconds.labels(model, v),
            compute_seconds=self.compute_seconds.labels(model, v),
            batch_size=self.batch_size.labels(model, v),
            queue_depth=self.queue_depth.labels(model, v),
            inference_count=self.inference_count.labels(model, v),
            execution_count=self.execution_count.labels(model, v),
            batches=BatchStatistics(),
        )

    def for_shadow(self, model: str, champion: int, candidate: int) -> ShadowMetrics:
        pair = (model, str(champion), str(candidate))
        return ShadowMetrics(
            outcomes={o: self.shadow_requests.labels(*pair, o) for o in SHADOW_OUTCOMES},
            samples=self.shadow_samples.labels(*pair),
            agreement=self.shadow_agreement.labels(*pair),
            abs_diff=self.shadow_abs_diff.labels(*pair),
        )

    def for_capture(self, model: str, version: int) -> CaptureMetrics:
        v = str(version)
        return CaptureMetrics(
            requests={o: self.capture_requests.labels(model, v, o) for o in CAPTURE_OUTCOMES},
            samples={o: self.capture_samples.labels(model, v, o) for o in CAPTURE_SAMPLE_OUTCOMES},
        )

    def set_canary(
        self, model: str, pair: tuple[int, int] | None, weight: float, mirror: float
    ) -> None:
        """The canary's shares as gauges; `pair` (champion, candidate) None: no canary."""
        old = self._canaries.pop(model, None)
        if old is not None:
            self.canary_weight.remove(*old)
            self.canary_mirror.remove(*old)
        if pair is not None:
            labels = self._canaries[model] = (model, str(pair[0]), str(pair[1]))
            self.canary_weight.labels(*labels).set(weight)
            self.canary_mirror.labels(*labels).set(mirror)

    def set_state(self, model: str, version: int, state: str | None) -> None:
        """Mark `state` as the version's state; None removes the version's state series."""
        v = str(version)
        for s in MODEL_STATES:
            if state is None:
                with contextlib.suppress(KeyError):
                    self.model_state.remove(model, v, s)
            else:
                self.model_state.labels(model, v, s).set(1.0 if s == state else 0.0)
        if state is None:
            with contextlib.suppress(KeyError):
                self.queue_depth.remove(model, v)


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    """What one front door's requests to one version decide: outcomes and durations."""

    outcomes: dict[str, LoopCounterChild]
    request_seconds: LoopHistogramChild  # successes
    failure_seconds: LoopCounterChild


@dataclass(frozen=True, slots=True)
class VersionMetrics:
    """The label children of one served version, looked up once at load."""

    by_protocol: dict[str, RequestMetrics]
    queue_seconds: LoopHistogramChild
    compute_seconds: LoopHistogramChild
    batch_size: LoopHistogramChild
    queue_depth: Gauge
    inference_count: LoopCounterChild
    execution_count: LoopCounterChild
    batches: BatchStatistics  # per batch size, for the statistics extension


@dataclass(frozen=True, slots=True)
class ShadowMetrics:
    """The label children of one champion/candidate pair."""

    outcomes: dict[str, Counter]
    samples: Counter
    agreement: Counter
    abs_diff: LoopHistogramChild


@dataclass(frozen=True, slots=True)
class CaptureMetrics:
    """The label children of one captured version."""

    requests: dict[str, Counter]
    samples: dict[str, Counter]


def _gpu_collector(device_id: int) -> Collector | None:
    """GPU memory and utilisation through NVML (the `gpu` extra, nvidia-ml-py), when it is
    installed and a driver answers; otherwise no GPU series at all, and one log line saying why."""
    try:
        import pynvml
    except ImportError:
        log.info("GPU metrics off: nvidia-ml-py is not installed (pip install 'inductive[gpu]')")
        return None
    try:
        pynvml.nvmlInit()
        handle = _nvml_handle(pynvml, device_id)
    except Exception as exc:  # NVMLError without a driver or device, or a bad device id
        log.info("GPU metrics off: NVML has no GPU %d here (%s)", device_id, exc)
        return None

    class _GpuCollector(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            gpu = str(device_id)
            mem = GaugeMetricFamily(
                "inductive_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"]
            )
            util = GaugeMetricFamily(
                "inductive_gpu_utilization_ratio", "GPU busy fraction (0-1).", labels=["gpu"]
            )
            try:
                mem.add_metric([gpu], float(pynvml.nvmlDeviceGetMemoryInfo(handle).used))
                util.add_metric([gpu], pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)
            except Exception as exc:  # a transient NVML error must not break /metrics
                log.warning("NVML query failed: %s", exc)
                return
            yield mem
            yield util

    return _GpuCollector()


def _nvml_handle(pynvml: Any, device_id: int) -> Any:
    """NVML numbers every GPU of the machine, CUDA only the visible ones: with
    CUDA_VISIBLE_DEVICES set, CUDA device `device_id` is its entry `device_id` (an NVML index,
    or a GPU's UUID)."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    visible = [d for d in visible if d]
    if not visible:
        return pynvml.nvmlDeviceGetHandleByIndex(device_id)
    entry = visible[device_id]
    if entry.isdigit():
        return pynvml.nvmlDeviceGetHandleByIndex(int(entry))
    return pynvml.nvmlDeviceGetHandleByUUID(entry)
