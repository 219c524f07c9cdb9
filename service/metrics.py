"""Every Prometheus metric of the service, defined once, with bounded label sets.

Labels are `model` and `version` of *served* versions only (names come from the store, never from
a client's URL), plus small closed sets (`protocol`, `outcome`, `state`, `reason`). Each served
version gets a `VersionMetrics` holding its label children, so the hot path never looks labels
up. What a request's front door decides (its outcome and duration) is labelled by `protocol`;
what its batch decides (queue time, compute, batch size, counts) is shared: HTTP and gRPC
requests batch together.

The counters and histograms a request or a batch updates are observed on the event loop only
(`LoopCounter`, `LoopHistogram`), and the statistics extension (service/statistics.py) reads the
same children: the two views are made of the same numbers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

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
        self.rejected = Counter(
            "inductive_requests_rejected",
            "Requests refused before reaching a model, by front door (protocol) and reason.",
            ("protocol", "reason"),
            registry=r,
        )
        for protocol in PROTOCOLS:
            for reason in REJECT_REASONS:
                self.rejected.labels(protocol, reason)

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


def _gpu_collector(device_id: int) -> Collector | None:
    """GPU memory and utilisation through NVML, when nvidia-ml-py is installed and a GPU answers."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_id)
    except Exception as exc:  # ImportError, or NVML without a driver: no GPU metrics
        log.info("GPU metrics off: %s", exc)
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
