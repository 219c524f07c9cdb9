"""Raw ONNX Runtime on the GPU: throughput per batch size, precision and I/O mode.

I/O modes: `numpy` (session.run with host arrays: copies in and out on every run),
`bound-host` (what the service does: host inputs bound once per run, outputs allocated on the
device and copied back once), `bound-device` (inputs already on the device, outputs left there:
the compute-only ceiling).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from benchmarks.raw_ort import time_runs
from benchmarks.workload import Workload, collate

MODES = ("numpy", "bound-host", "bound-device")


def session_for(model_path: Path, provider: str, device_id: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers: list[Any] = ["CPUExecutionProvider"]
    if provider == "cuda":
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_id}))
    session = ort.InferenceSession(str(model_path), options, providers=providers)
    if provider == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
        raise RuntimeError(
            f"ONNX Runtime fell back to {session.get_providers()} for {model_path.name}: "
            "the CUDA libraries were not found (see run_on_device.sh's LD_LIBRARY_PATH)"
        )
    return session


def runner(
    session: ort.InferenceSession, inputs: dict[str, np.ndarray], mode: str, device: str
) -> Callable[[], object]:
    names = [o.name for o in session.get_outputs()]
    if mode == "numpy":
        return lambda: session.run(names, inputs)
    binding = session.io_binding()
    if mode == "bound-device":
        for name, array in inputs.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, 0))
        for name in names:
            binding.bind_output(name, device, 0)
        return lambda: session.run_with_iobinding(binding)

    def host_round_trip() -> object:
        for name, array in inputs.items():
            binding.bind_cpu_input(name, array)
        for name in names:
            binding.bind_output(name, device, 0)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    return host_round_trip


def sweep(
    workload: Workload,
    model_path: Path,
    provider: str,
    batches: tuple[int, ...],
    seconds: float,
) -> list[dict[str, Any]]:
    """One row per (mode, batch): samples/s and the per-run p50."""
    session = session_for(model_path, provider)
    device = "cuda" if provider == "cuda" else "cpu"
    rows = []
    for batch in batches:
        inputs = collate(workload, batch)
        for mode in MODES:
            times = time_runs(runner(session, inputs, mode, device), seconds)
            rows.append(
                {
                    "mode": mode,
                    "batch": batch,
                    "throughput": batch * len(times) / float(times.sum()),
                    "p50_ms": float(np.percentile(times, 50) * 1e3),
                }
            )
    return rows
