"""What the per-request steps of our Python cost, in µs, without sockets or other threads.

    python -m benchmarks.hotpath [--model cnn] [--store benchmarks/.store]

Times, on one sample of the model's benchmark workload: decoding the binary request body,
encoding the binary response from the model's real outputs, and the Prometheus updates one
request makes (a queue-depth gauge set, two histogram observations, one counter increment).
`python -m benchmarks.profile` places these among everything else the event loop does.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from benchmarks.bodies import binary_body
from benchmarks.config import DEFAULT_STORE, WORK_DIR
from benchmarks.run import cpu_model, ensure_store
from benchmarks.workload import load_workload
from service.metrics import Metrics
from service.protocol import decode_request, encode_response


def best_us(step: Callable[[], object], number: int) -> float:
    """The best of five timings of `number` calls, in µs per call."""
    return min(timeit.repeat(step, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath", description=__doc__)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    ensure_store(args.store, (args.model,))
    workload = load_workload(args.store, args.model, WORK_DIR / "cache")
    body, header_length = binary_body(workload.samples[0])
    request = decode_request(body, header_length, max_elements=1 << 30)
    session = ort.InferenceSession(str(workload.model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, request.inputs), strict=True))
    metrics = Metrics().for_version(workload.name, workload.version)
    success = metrics.outcomes["success"]

    def per_request_metrics() -> None:
        metrics.queue_depth.set(1)
        metrics.queue_seconds.observe(0.002)
        success.inc()
        metrics.request_seconds.observe(0.004)

    steps = {
        "decode binary request": lambda: decode_request(body, header_length, max_elements=1 << 30),
        "encode binary response": lambda: encode_response(
            request, outputs, model_name=workload.name, model_version=workload.version, labels=None
        ),
        "Prometheus updates of one request": per_request_metrics,
    }
    print(f"`{args.model}`, {len(body)}-byte binary request; {cpu_model()}\n")
    print("| step | µs |\n| --- | ---: |")
    for name, step in steps.items():
        print(f"| {name} | {best_us(step, args.number):.1f} |")


if __name__ == "__main__":
    main()
