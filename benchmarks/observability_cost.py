"""What tracing and the access log cost one request on the event loop, in µs, in-process: no
sockets, no model, no noise from the other processes a shared machine runs between the server's
instructions (benchmarks.compare measures the same end to end, through wrk).

    python -m benchmarks.observability_cost [--number 20000]
    python benchmarks/observability_cost.py --tree /path/to/other/checkout   # its InferCall alone

One step is the front end's bookkeeping for one request as a door drives it: an `InferCall`
made, stamped as queued, given the ticket of a batch of 8, stamped as encoded and answered, and
finished; one request in 8 also records its batch (tracing's batch span). The variants: both off
(the default), the access log at full rate (its line formatted and buffered; nothing written:
the writer thread never runs), tracing with every request sampled and with one in ten (spans made
and handed to the SDK's batch processor, whose exporter discards them). `--tree` times the first
variant on another checkout's `service` (one from before tracing existed), for an A/B of the cost
with both off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

BATCH = 8


def best_us(step: Callable[[], object], number: int) -> float:
    """The best of seven timings of `number` calls, in µs per call."""
    return min(timeit.repeat(step, number=number, repeat=7)) / number * 1e6


def request_step(state: Any, traced: bool) -> Callable[[], None]:
    from service.batching.ticket import Ticket
    from service.inference.call import InferCall

    try:
        from service.batching.run import BatchRun
    except ImportError:  # a checkout from before batches were stamped on tickets
        BatchRun = None  # type: ignore[assignment,misc]  # noqa: N806
    run = None if BatchRun is None else BatchRun(time.perf_counter(), BATCH, BATCH)
    if run is not None:
        run.ended = time.perf_counter()
    counter = [0]
    batch_tracer: Any = None
    if traced:
        from service.observability import tracing

        batch_tracer = tracing.batch_tracer
    spans: list[object | None] = []

    def step() -> None:
        call = InferCall(state, "cnn", None, "http", None, "r-1")
        call.queued_at = time.perf_counter()
        ticket: Any = Ticket()
        if run is not None:
            ticket.run = run
        call.ticket = ticket
        if getattr(call, "observer", None) is not None:
            call.encode_started = time.perf_counter()
        call.answered_at = time.perf_counter()
        call.finish(200, 412)
        if batch_tracer is not None:
            spans.append(call.span)
            counter[0] += 1
            if counter[0] % BATCH == 0:
                batch_tracer.record_batch("cnn:1", run, spans)
                spans.clear()

    return step


def state_with(env: dict[str, str], access_log: bool) -> Any:
    from service.http.state import AppState
    from service.lifecycle import ModelManager
    from service.metrics import Metrics
    from service.settings import Settings

    settings = Settings(access_log=access_log, access_log_path=os.devnull)
    metrics = Metrics()
    state = AppState(settings=settings, manager=ModelManager(settings, metrics), metrics=metrics)
    from service.observability.observer import build_observer

    state.observer = build_observer(settings, env)
    return state


def discarding_exporter_env() -> dict[str, str]:
    """OTEL_* variables for tracing into an exporter that keeps nothing (registered below)."""
    return {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "bench",
        "OTEL_BSP_MAX_QUEUE_SIZE": "1000000",  # none dropped: every span costs its export
    }


async def _timed(step: Callable[[], None], number: int) -> float:
    """Timed on a running event loop, as the server runs it (the access log arms its flush
    timer there; the timer never fires while the timing holds the loop)."""
    return best_us(step, number)


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.observability_cost", description=__doc__)
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--tree", type=Path, help="another checkout: time its InferCall alone")
    args = parser.parse_args()
    if args.tree is not None:
        sys.path.insert(0, str(args.tree.resolve()))
        from service.http.state import AppState
        from service.lifecycle import ModelManager
        from service.metrics import Metrics
        from service.settings import Settings

        settings = Settings()
        metrics = Metrics()
        manager = ModelManager(settings, metrics)
        state = AppState(settings=settings, manager=manager, metrics=metrics)
        cost = asyncio.run(_timed(request_step(state, False), args.number))
        print(f"| {args.tree}: both off | {cost:.2f} |")
        return

    # The console exporter's output would be the cost of printing: swap in one that discards.
    from opentelemetry.sdk.trace import export

    class Discard(export.SpanExporter):
        def export(self, spans: Any) -> export.SpanExportResult:
            return export.SpanExportResult.SUCCESS

    export.ConsoleSpanExporter = Discard  # type: ignore[misc,assignment]
    from service.observability import tracing

    variants: list[tuple[str, dict[str, str], bool]] = [
        ("both off (the default)", {}, False),
        ("access log, every request", {}, True),
        ("tracing, every request sampled", discarding_exporter_env(), False),
        (
            "tracing, one request in ten sampled",
            {
                **discarding_exporter_env(),
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            },
            False,
        ),
    ]
    print("| variant | µs per request |\n| --- | ---: |")
    for name, env, access_log in variants:
        for key, value in env.items():
            os.environ[key] = value  # the SDK reads its sampler from the environment
        state = state_with(env, access_log)
        traced = state.observer is not None and state.observer.tracing is not None
        cost = asyncio.run(_timed(request_step(state, traced), args.number))
        print(f"| {name} | {cost:.2f} |", flush=True)
        if state.observer is not None:
            state.observer.close()
        tracing.batch_tracer = None
        for key in env:
            del os.environ[key]


if __name__ == "__main__":
    main()
