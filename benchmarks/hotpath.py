"""What the per-request steps of our Python cost, in µs, without sockets or other threads.

    python -m benchmarks.hotpath [--model cnn] [--store benchmarks/.store]

Times, on one sample of the model's benchmark workload: reading the request whole (afresh, and
when its head repeats the connection's last, which also spares reading its headers), decoding and
checking the binary request body (in full, and by the plan kept for its JSON header), encoding
the binary response from the model's real outputs, and the metric updates one request makes
(two histogram observations, one counter increment). `python -m benchmarks.profile` places
these among everything else the event loop does.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from benchmarks.bodies import binary_body, http_request
from benchmarks.config import DEFAULT_STORE, WORK_DIR
from benchmarks.reporting import cpu_model
from benchmarks.workload import ensure_store, load_workload
from model_store import open_store
from service.batching.assemble import Layout
from service.http.infer import read_headers
from service.http.whole_request import parse_whole_request
from service.metrics import Metrics
from service.model_io.signature import ModelSignature
from service.protocol import decode_request, encode_response
from service.protocol.request_plans import RequestPlans
from service.protocol.validate import validate_request


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
    wire = http_request(workload.path, body, header_length)
    store = open_store(str(args.store))
    config = store.config(workload.name)
    signature = ModelSignature.build(
        store.manifest(workload.name, workload.version), config, config.batching.max_batch_size
    )
    plans = RequestPlans(signature, Layout(signature, config.ragged_inputs), 1 << 30)
    request = plans.decode(body, header_length).request  # makes the plan
    session = ort.InferenceSession(str(workload.model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, dict(request.inputs)), strict=True))
    metrics = Metrics().for_version(workload.name, workload.version)
    success = metrics.outcomes["success"]

    def per_request_metrics() -> None:
        metrics.queue_seconds.observe(0.002)
        success.inc()
        metrics.request_seconds.observe(0.004)

    def full_decode() -> None:
        validate_request(decode_request(body, header_length, max_elements=1 << 30), signature)

    whole = parse_whole_request(wire)
    assert whole is not None

    def read_again() -> None:
        """A keep-alive client's next request: its head is the connection's last."""
        again = parse_whole_request(wire, whole.head)
        assert again is not None
        assert again.head is whole.head

    steps = {
        "read the request whole (one regular expression)": lambda: parse_whole_request(wire),
        "read it whole when its head is the connection's last": read_again,
        "what the headers say (InferCall's facts)": lambda: read_headers(whole.head.headers),
        "decode and check the binary request in full": full_decode,
        "decode and check it by its cached plan": lambda: plans.decode(body, header_length),
        "encode the binary response": lambda: encode_response(
            request, outputs, model_name=workload.name, model_version=workload.version, labels={}
        ),
        "metric updates of one request": per_request_metrics,
    }
    print(f"`{args.model}`, {len(body)}-byte binary request; {cpu_model()}\n")
    print("| step | µs |\n| --- | ---: |")
    for name, step in steps.items():
        print(f"| {name} | {best_us(step, args.number):.1f} |")


if __name__ == "__main__":
    main()
