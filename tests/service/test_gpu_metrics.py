"""GPU metrics (service/metrics.py). Without a GPU, or without nvidia-ml-py, no GPU series appear,
one log line says why, and the rest of /metrics renders as usual: tested with the real
nvidia-ml-py of the `gpu` extra on this GPU-less machine. With NVML answering, the two gauges
report the device CUDA serves on: a GPU is needed for real NVML (tests/gpu checks the series on
a real server there), so here a small fake module stands in for it."""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics


def _samples(metrics: Metrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        f"{s.name}{s.labels}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _gpu_series(metrics: Metrics) -> list[str]:
    return [name for name in _samples(metrics) if name.startswith("inductive_gpu_")]


def test_no_gpu_means_no_gpu_series(caplog: pytest.LogCaptureFixture) -> None:
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py (the gpu extra) is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass  # no driver: the path under test
    else:
        pynvml.nvmlShutdown()
        pytest.skip("NVML answers on this machine: tests/gpu covers it")
    metrics = Metrics()
    with caplog.at_level(logging.INFO, logger="service.metrics"):
        metrics.enable_gpu(0)
    assert _gpu_series(metrics) == []
    assert "GPU metrics off: NVML has no GPU 0 here" in caplog.text
    assert any(name.startswith("process_cpu_seconds_total") for name in _samples(metrics))


def test_without_nvidia_ml_py(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    metrics = Metrics()
    with caplog.at_level(logging.INFO, logger="service.metrics"):
        metrics.enable_gpu(0)
    assert _gpu_series(metrics) == []
    assert "nvidia-ml-py is not installed" in caplog.text


class FakeNvml(types.ModuleType):
    """The five NVML calls the collector makes, over devices named by index or UUID."""

    class NVMLError(Exception):
        pass

    def __init__(self, used: float = 3e9, busy: int = 37, fail_queries: bool = False) -> None:
        super().__init__("pynvml")
        self.used, self.busy, self.fail_queries = used, busy, fail_queries
        self.opened: list[tuple[str, Any]] = []

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> tuple[str, Any]:
        self.opened.append(("index", index))
        return self.opened[-1]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> tuple[str, Any]:
        self.opened.append(("uuid", uuid))
        return self.opened[-1]

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> types.SimpleNamespace:
        if self.fail_queries:
            raise self.NVMLError("GPU is lost")
        return types.SimpleNamespace(used=self.used)

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> types.SimpleNamespace:
        return types.SimpleNamespace(gpu=self.busy)


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fake


def test_gauges_report_the_device(nvml: FakeNvml) -> None:
    metrics = Metrics()
    metrics.enable_gpu(1)
    assert nvml.opened == [("index", 1)]
    samples = _samples(metrics)
    assert samples["inductive_gpu_memory_used_bytes{'gpu': '1'}"] == 3e9
    assert samples["inductive_gpu_utilization_ratio{'gpu': '1'}"] == 0.37


@pytest.mark.parametrize(
    ("visible", "device_id", "opened"),
    [
        ("3,5", 1, ("index", 5)),
        ("GPU-aaaa, GPU-bbbb", 1, ("uuid", "GPU-bbbb")),
        ("", 0, ("index", 0)),
    ],
)
def test_cuda_visible_devices_name_the_nvml_device(
    nvml: FakeNvml,
    monkeypatch: pytest.MonkeyPatch,
    visible: str,
    device_id: int,
    opened: tuple[str, Any],
) -> None:
    """CUDA counts only the visible GPUs, NVML all of them."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    Metrics().enable_gpu(device_id)
    assert nvml.opened == [opened]


def test_a_device_cuda_cannot_see_gives_no_series(
    nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    metrics = Metrics()
    with caplog.at_level(logging.INFO, logger="service.metrics"):
        metrics.enable_gpu(1)
    assert _gpu_series(metrics) == []
    assert "GPU metrics off: NVML has no GPU 1 here" in caplog.text


def test_a_failing_query_leaves_the_rest_of_metrics(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(fail_queries=True))
    metrics = Metrics()
    metrics.enable_gpu(0)
    with caplog.at_level(logging.WARNING, logger="service.metrics"):
        samples = _samples(metrics)
    assert not [name for name in samples if name.startswith("inductive_gpu_")]
    assert any(name.startswith("process_cpu_seconds_total") for name in samples)
    assert "NVML query failed: GPU is lost" in caplog.text
