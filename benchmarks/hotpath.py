"""What the per-request steps of our Python cost, in µs, without sockets or other threads.

    python -m benchmarks.hotpath [--model cnn] [--store benchmarks/.store]

Times, on one sample of the model's benchmark workload: reading the request whole (afresh, and
when its head repeats the connection's last, which also spares reading its headers), decoding and
checking the binary request body (in full, and by the plan kept for its JSON header), encoding
the binary response from the model's real outputs, the metric updates one request makes
(two histogram observations, one counter increment), finding the version that answers (one
dictionary read; a canary adds a draw), the mirror and capture hooks of a version that has
neither, and capturing a request (not drawn; queued). `python -m benchmarks.profile` places
these among everything else the event loop does.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import onnxruntime as ort

from benchmarks.bodies import binary_body, http_request
from benchmarks.config import DEFAULT_STORE, WORK_DIR
from benchmarks.reporting import cpu_model
from benchmarks.workload import ensure_store, load_workload
from model_store import VersionPolicy, open_store
from service.batching.assemble import Layout
from service.capture import CaptureWriter, VersionCapture
from service.http.infer import read_headers
from service.http.whole_request import parse_whole_request
from service.lifecycle import ModelManager, ServedVersion
from service.lifecycle.routing import plan
from service.metrics import Metrics
from service.model_io.signature import ModelSignature
from service.protocol import decode_request, encode_response
from service.protocol.request_plans import RequestPlans
from service.protocol.validate import validate_request
from service.settings import Settings


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
    http = metrics.by_protocol["http"]
    success = http.outcomes["success"]

    def per_request_metrics() -> None:
        metrics.queue_seconds.observe(0.002)
        success.inc()
        http.request_seconds.observe(0.004)

    def full_decode() -> None:
        validate_request(decode_request(body, header_length, max_elements=1 << 30), signature)

    whole = parse_whole_request(wire)
    assert whole is not None

    def read_again() -> None:
        """A keep-alive client's next request: its head is the connection's last."""
        again = parse_whole_request(wire, whole.head)
        assert again is not None
        assert again.head is whole.head

    # The manager's tables as a poll leaves them: the model alone, and a copy of it in a canary
    # against itself (20 % weight). Only lookups run: no session, no batcher.
    manager = ModelManager(Settings(store=str(args.store)), Metrics())
    served = ServedVersion(
        workload.name, workload.version, store.manifest(workload.name, workload.version),
        config, signature, model=cast(Any, None), batcher=cast(Any, None),
        metrics=metrics, plans=plans,
    )  # fmt: skip
    candidate = ServedVersion(**{**vars(served), "version": workload.version + 1})
    canary = VersionPolicy(kind="canary", candidate=candidate.version, weight=0.2)
    pair = {served.version: served, candidate.version: candidate}
    manager._publish(workload.name, {served.version: served}, plan(
        {served.version: served}, VersionPolicy(), {}))  # fmt: skip
    manager._publish("canary", pair, plan(pair, canary, {"stable": served.version}))

    def hooks_of_a_plain_version() -> None:
        """The two checks InferCall makes for a version that neither mirrors nor captures."""
        if served.shadow is not None:
            served.shadow.offer(request.inputs, 1, None, cast(Any, None))
        if served.capture is not None:
            served.capture.offer(request.inputs, outputs, None)

    def capture_with(rate: float) -> VersionCapture:
        chosen = Settings(capture_uri=str(WORK_DIR / "hotpath-captures"),
                          capture_sample_rate=rate, capture_max_samples_per_s=1e12,
                          capture_queue_bytes=1 << 60)  # fmt: skip
        writer = CaptureWriter(chosen, Metrics())  # never started: what is queued stays
        capture = writer.for_version(served)
        assert capture is not None, f"{args.model} is not capturable"
        return capture

    undrawn, queued = capture_with(1e-12), capture_with(1.0)

    steps = {
        "an empty step (what timing a step costs)": lambda: None,
        "read the request whole (one regular expression)": lambda: parse_whole_request(wire),
        "read it whole when its head is the connection's last": read_again,
        "what the headers say (HeaderFacts)": lambda: read_headers(whole.head.headers, None),
        "decode and check the binary request in full": full_decode,
        "decode and check it by its cached plan": lambda: plans.decode(body, header_length),
        "encode the binary response": lambda: encode_response(
            request, outputs, model_name=workload.name, model_version=workload.version, labels={}
        ),
        "metric updates of one request": per_request_metrics,
        "the version answering a request naming none (no canary)": lambda: manager.lookup(
            workload.name
        ),
        "the same in a canary (one draw)": lambda: manager.lookup("canary"),
        "mirror and capture hooks of a version with neither": hooks_of_a_plain_version,
        "capture of a request not drawn": lambda: undrawn.offer(request.inputs, outputs, None),
        "capture of a request queued for the writer": lambda: queued.offer(
            request.inputs, outputs, None
        ),
    }
    print(f"`{args.model}`, {len(body)}-byte binary request; {cpu_model()}\n")
    print("| step | µs |\n| --- | ---: |")
    for name, step in steps.items():
        print(f"| {name} | {best_us(step, args.number):.1f} |")


if __name__ == "__main__":
    main()
