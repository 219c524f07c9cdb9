"""What honouring `priority` costs a request without one: the batcher before and after.

    python -m benchmarks.priority_overhead [--baseline REV] [--rounds 101]

Loads `service/batching/batcher.py` twice, from the working tree and as it was at git revision
`REV` (the commit before priority was honoured), and times, on the event loop and without the
worker thread, what a request costs the batcher's queue: `submit` while a batch computes (the
common case under load) and taking the full batch off the queue (`_ready_batch`), for 64 requests
without a level. Each round times the versions in a fresh random order; the median per request
is reported with the spread of the rounds, and the ratio of the two versions within each round
(its median and quartiles): on a shared machine only a ratio whose quartiles both lie above 1
would be a slowdown. A third line times the same with every eighth request given a level.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.reporting import cpu_model
from model_store.schema import TensorSpec
from service.batching.assemble import Layout
from service.metrics import Metrics
from service.model_io.signature import ModelSignature

REPO = Path(__file__).resolve().parents[1]
BATCH = 64
ROUNDS_PER_SAMPLE = 200
DEFAULT_BASELINE = "2f69fa1"  # the last commit before the batcher honoured priority


def _module_at(revision: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{revision}:service/batching/batcher.py"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    module = types.ModuleType("baseline_batcher")
    module.__file__ = f"<batcher.py at {revision}>"
    sys.modules[module.__name__] = module  # dataclasses look their module up while building
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def _layout() -> Layout:
    spec = TensorSpec(name="x", datatype="FP32", shape=(-1, 16))
    signature = ModelSignature(
        inputs={"x": spec}, outputs={"y": spec}, server_filled=frozenset(), ragged_axes={},
        ragged_max_lengths={},
        batched=True, max_batch_size=BATCH, reject_non_finite=False, labels={},
    )  # fmt: skip
    return Layout(signature, ())


def _batcher(module: types.ModuleType) -> Any:
    policy = module.BatchPolicy(max_batch_size=BATCH, max_queue_delay_s=0.0)
    metrics = Metrics().for_version("m", 1)
    batcher = module.Batcher("m:1", lambda inputs: inputs, _layout(), policy, metrics)
    batcher.start()
    batcher._busy = True  # a batch computes: requests queue, nothing is dispatched meanwhile
    return batcher


def _per_request_ns(batcher: Any, inputs: dict[str, np.ndarray], levels: list[int]) -> float:
    key = (("x", (16,)),)
    started = time.perf_counter_ns()
    for _ in range(ROUNDS_PER_SAMPLE):
        if any(levels):
            for level in levels:
                batcher.submit(inputs, 1, None, key=key, priority=level)
        else:
            for _level in levels:
                batcher.submit(inputs, 1, None, key=key)
        batch = batcher._ready_batch()
        assert batch is not None
        assert len(batch) == BATCH
    return (time.perf_counter_ns() - started) / (ROUNDS_PER_SAMPLE * BATCH)


async def _measure(
    baseline: types.ModuleType, current: types.ModuleType, rounds: int
) -> dict[str, list[float]]:
    inputs = {"x": np.ones((1, 16), np.float32)}
    plain = [0] * BATCH
    mixed = [1 if i % 8 == 7 else 0 for i in range(BATCH)]
    old, new = _batcher(baseline), _batcher(current)
    samples: dict[str, list[float]] = {
        "baseline": [],
        "current": [],
        "current, 1 in 8 with a level": [],
    }
    runs = [("baseline", old, plain), ("current", new, plain)]
    runs.append(("current, 1 in 8 with a level", new, mixed))
    rng = random.Random(0)
    for _ in range(rounds):
        for name, batcher, levels in rng.sample(runs, len(runs)):
            samples[name].append(_per_request_ns(batcher, inputs, levels))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare")
    parser.add_argument("--rounds", type=int, default=101)
    args = parser.parse_args()
    from service.batching import batcher as current

    baseline = _module_at(args.baseline)
    samples = asyncio.run(_measure(baseline, current, args.rounds))
    print(f"batcher queue cost per request, {BATCH} requests a batch, {args.rounds} rounds; "
          f"{cpu_model()}\n")  # fmt: skip
    print("| batcher | median ns/request | min | max |")
    print("| --- | --- | --- | --- |")
    for name, values in samples.items():
        label = f"{name} ({args.baseline})" if name == "baseline" else name
        print(
            f"| {label} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} |"
        )
    # Paired by round (the versions ran back to back): drift in the machine's load cancels out.
    ratios = [c / b for c, b in zip(samples["current"], samples["baseline"], strict=True)]
    low, median, high = statistics.quantiles(ratios, n=4)
    print(
        f"\ncurrent / baseline, per round: median {median:.3f} "
        f"(quartiles {low:.3f}-{high:.3f}, {len(ratios)} rounds)"
    )


if __name__ == "__main__":
    main()
