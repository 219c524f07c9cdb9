"""Raw ONNX Runtime in-process: the physical limit for a model on the server's core.

Run as its own process pinned to the server core (`taskset`), one intra-op thread like the
servers: `python -m benchmarks.raw_ort --store S --model cnn --cache C --batches 1,2,...,128`
prints a JSON list of {batch, throughput (samples/s), p50_ms, p99_ms (per run)}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from benchmarks.workload import Workload, collate, load_workload

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)


def cpu_session(model_path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def time_runs(run: Any, seconds: float, warmup_runs: int = 5) -> np.ndarray:
    """Seconds per call of `run()`, called repeatedly for `seconds` after a warm-up."""
    for _ in range(warmup_runs):
        run()
    times = []
    end = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        run()
        stop = time.perf_counter()
        times.append(stop - start)
        if stop > end:
            return np.asarray(times)


def sweep(workload: Workload, batches: tuple[int, ...], seconds: float) -> list[dict[str, Any]]:
    session = cpu_session(workload.model_path)
    names = [o.name for o in session.get_outputs()]
    rows = []
    for batch in batches:
        inputs = collate(workload, batch)
        times = time_runs(lambda inputs=inputs: session.run(names, inputs), seconds)
        rows.append(
            {
                "batch": batch,
                "throughput": batch * len(times) / float(times.sum()),
                "p50_ms": float(np.percentile(times, 50) * 1e3),
                "p99_ms": float(np.percentile(times, 99) * 1e3),
                "runs": len(times),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--seconds", type=float, default=3.0, help="per batch size")
    args = parser.parse_args()
    workload = load_workload(args.store, args.model, args.cache)
    batches = tuple(int(b) for b in args.batches.split(","))
    print(json.dumps(sweep(workload, batches, args.seconds)))


if __name__ == "__main__":
    main()
