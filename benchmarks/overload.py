"""Overload: offer ≥ 10 × the server's capacity for 30 s and check that it degrades gracefully.

    python -m benchmarks.overload [--seconds 30] [--factor 12] [--connections 512] [--out DIR]

1. A store with one deliberately heavy model (`heavy`: x FP32 [-1, 1024] through 480 chained
   1024×1024 MatMuls, ≈ 1 GFLOP a sample), so that the capacity is a couple of hundred requests
   per second and the load generator, on one core, offers ten times that while staying far from
   its own limit: else its own queueing would inflate the latencies.
   Batching: max batch 32, max queue delay 5 ms, max queue size 64.
2. The server (`python -m service`) pinned to core 0, the load generators to core 1.
3. Capacity: wrk, closed loop, 48 connections (the queue never fills). Baseline latency: one
   client at a quarter of the capacity (benchmarks/openloop.py). Overload: the open-loop
   generator at `--factor` × capacity over `--connections` keep-alive connections (an accepted
   request holds its connection ≈ 1 s, so about a hundred are always waiting and 512 keep the
   offered rate above 10 ×). Recovery: the baseline's client again, for 5 s. Open loop, because
   a closed loop with hundreds of connections keeps the server saturated by design and measures
   its own queue (Little's law) instead of the time to refuse. Latencies here count from each
   request's send: the server's time to answer or to refuse.
4. From a process of its own (benchmarks/sampler.py): the server's resident memory every
   250 ms, the queue depth gauge from /metrics every second (Prometheus' usual scrape interval
   is 15 s or more; each scrape holds the server's event loop for a render, ≈ 3 ms here).

Judged: the queue stays ≤ max_queue_size; every excess request gets 503 with Retry-After and the
p99 of a refusal is < 5 ms; the server keeps answering at least half its capacity (refusing
costs CPU too, but must not starve the model); accepted requests keep a bounded p99 (≤ 2 × the
time to drain a full queue plus a batch at the rate they were actually served during the
overload, and not growing); resident memory grows < 50 MB; latency is back to normal (≤ 2 ×
the baseline p99) within 2 s after the load stops. Writes overload.json and overload.md to
benchmarks/results/reliability/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvloop

from benchmarks.closedloop import LoadResult, run_wrk
from benchmarks.harness.models import matmul_chain
from benchmarks.harness.servers import ServerProcess, serve, service_launch
from benchmarks.openloop import LOST, OpenLoop
from benchmarks.procstat import cpu_seconds
from benchmarks.reporting import machine, machine_lines, write_report
from benchmarks.sampler import Sampler, process_status
from model_store import add_onnx, open_store
from model_store.schema import BatchingConfig, ModelConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "reliability"
WORK = ROOT / "benchmarks" / ".work" / "reliability"
MODEL = "heavy"
WIDTH, DEPTH = 1024, 480
BATCHING = BatchingConfig(max_batch_size=32, max_queue_delay_ms=5, max_queue_size=64)
SERVER_CORE, CLIENT_CORE = "0", 1
QUEUE_SCRAPE_PERIOD_S = 1.0
PROBE = 0.25  # the baseline and recovery client's rate, a fraction of the capacity


# --- the store and the server --------------------------------------------------------------------


def build_store(directory: Path) -> Path:
    """A store holding `heavy` v1 (built once, reused)."""
    store_dir = directory / f"store-{WIDTH}x{DEPTH}"
    if (store_dir / MODEL / "1" / "manifest.json").is_file():
        return store_dir
    model = matmul_chain(directory, width=WIDTH, depth=DEPTH, name=MODEL)
    add_onnx(open_store(str(store_dir)), MODEL, model, config=ModelConfig(batching=BATCHING))
    return store_dir


@contextlib.contextmanager
def start_server(store_dir: Path, log_path: Path) -> Iterator[ServerProcess]:
    launch = service_launch(
        {"INDUCTIVE_STORE": str(store_dir), "INDUCTIVE_MODEL_CONTROL_MODE": "none"}
    )
    with serve(launch, core=SERVER_CORE, log_path=log_path) as server:
        yield server


def infer_request(port: int, seed: int = 0) -> bytes:
    """One whole HTTP/1.1 request: a binary-tensor inference of one sample."""
    x = np.random.default_rng(seed).standard_normal((1, WIDTH)).astype(np.float32)
    header = orjson.dumps({
        "inputs": [{"name": "x", "shape": [1, WIDTH], "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes}}],
        "parameters": {"binary_data_output": True},
    })  # fmt: skip
    body = header + x.tobytes()
    head = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Inference-Header-Content-Length: {len(header)}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --- the load ----------------------------------------------------------------------------------


@dataclass
class Outcomes:
    """Every answer of an open-loop run: seconds since the run began, latency from the send
    (the server's time to answer or refuse), status; 503s without Retry-After; lost requests."""

    times: np.ndarray
    latencies: np.ndarray
    statuses: np.ndarray
    missing_retry_after: int
    socket_errors: int

    def of(self, status: int) -> np.ndarray:
        return self.latencies[self.statuses == status]


def open_loop(
    port: int, request: bytes, *, rate: float, seconds: float, connections: int
) -> Outcomes:
    """benchmarks/openloop.py in this process (pinned to the client core by `run`): `rate`
    requests a second over `connections` keep-alive connections, whatever the server does."""
    missing = 0

    def check(index: int, status: int, head: bytes, body: bytes, *times: float) -> None:
        nonlocal missing
        if status == 503 and b"\r\nretry-after:" not in head.lower():
            missing += 1

    load = OpenLoop("127.0.0.1", port, [request], rate=rate, connections=connections,
                    on_answer=check)  # fmt: skip
    start = uvloop.run(load.run(seconds))
    statuses = np.asarray(load.status)
    answered = statuses != LOST
    sent, done = np.asarray(load.sent)[answered], np.asarray(load.done)[answered]
    return Outcomes(
        times=done - start,
        latencies=done - sent,
        statuses=statuses[answered],
        missing_retry_after=missing,
        socket_errors=int((~answered).sum()) + len(load.backlog) + load.in_flight,
    )


def closed_loop(url: str, request_file: Path, *, connections: int, seconds: float) -> LoadResult:
    """wrk from the client core: the capacity (the queue never fills at 48 connections)."""
    return run_wrk(url, [request_file], connections=connections, duration_s=seconds,
                   core=CLIENT_CORE)  # fmt: skip


# --- the run -------------------------------------------------------------------------------------


def percentiles(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    p = [float(v) for v in np.percentile(values * 1000, [50, 90, 99, 99.9])]
    return {"p50_ms": p[0], "p90_ms": p[1], "p99_ms": p[2], "p999_ms": p[3],
            "max_ms": float(values.max() * 1000), "count": len(values)}  # fmt: skip


def recovery_seconds(outcomes: Outcomes, threshold_s: float) -> float | None:
    """Time after the load stopped from which every request was OK and ≤ `threshold_s`."""
    last_bad = None
    for t, latency, status in zip(
        outcomes.times, outcomes.latencies, outcomes.statuses, strict=True
    ):
        if status != 200 or latency > threshold_s:
            last_bad = t
    if last_bad is None:
        return 0.0
    return last_bad if last_bad < outcomes.times[-1] else None


@dataclass
class Report:
    capacity_rps: float
    baseline: dict[str, float]
    overload_seconds: float
    connections: int
    offered_rps: float
    offered_over_capacity: float
    accepted_rps: float
    accepted: dict[str, float]
    accepted_p99_halves_ms: list[float]
    server_cpu_cores: float
    refused: dict[str, float]
    refused_without_retry_after: int
    other_statuses: dict[str, int]
    socket_errors: int
    max_queue_depth: float
    max_queue_size: int
    queue_scrape_failures: int
    rss_before_mb: float
    rss_max_mb: float
    rss_after_mb: float
    recovery_threshold_ms: float
    recovery_s: float | None
    recovery_p99_per_half_second_ms: list[float]
    accepted_p99_bound_ms: float
    verdicts: dict[str, bool]


def run(seconds: float, connections: int, factor: float, work: Path) -> Report:
    os.sched_setaffinity(0, {CLIENT_CORE})
    store_dir = build_store(work)
    with start_server(store_dir, work / "overload-server.log") as server:
        request = infer_request(server.port)
        request_file = work / "overload-request.http"
        request_file.write_bytes(request)
        closed_loop(server.url, request_file, connections=8, seconds=3)  # warm-up
        cap = closed_loop(server.url, request_file, connections=48, seconds=10)
        assert cap.errors == 0, f"capacity run got {cap.errors} errors"
        capacity = cap.throughput
        # One client at a quarter of the capacity: the latency of a server at ease, before and
        # after the overload.
        probe_rate = PROBE * capacity
        baseline_run = open_loop(server.port, request, rate=probe_rate, seconds=3, connections=1)
        baseline = percentiles(baseline_run.of(200))
        rss_before = process_status(server.pid)["rss_mb"]

        sampler = Sampler(server, 0.25, queue_period=QUEUE_SCRAPE_PERIOD_S)
        sampler.start()
        cpu_before = cpu_seconds(server.pid)
        over = open_loop(
            server.port, request, rate=factor * capacity, seconds=seconds, connections=connections
        )
        server_cpu = (cpu_seconds(server.pid) - cpu_before) / seconds
        threshold = 2 * baseline["p99_ms"] / 1000
        after = open_loop(server.port, request, rate=probe_rate, seconds=5, connections=1)
        samples = sampler.stop()
        rss_after = process_status(server.pid)["rss_mb"]

    statuses = over.statuses
    others = {str(s): int((statuses == s).sum()) for s in set(statuses.tolist()) - {200, 503}}
    accepted = percentiles(over.of(200))
    ok = statuses == 200
    first_half = over.times < seconds / 2
    halves = [
        percentiles(over.latencies[ok & part]).get("p99_ms", float("nan"))
        for part in (first_half, ~first_half)
    ]
    refused = percentiles(over.of(503))
    queues = [s["queue"] for s in samples if "queue" in s]
    rss_max = max([s["rss_mb"] for s in samples] + [rss_after])
    recovery = recovery_seconds(after, threshold)
    windows = [
        percentiles(np.asarray(after.latencies)[(np.asarray(after.times) // 0.5) == w]).get(
            "p99_ms", float("nan")
        )
        for w in range(10)
    ]
    accepted_rps = accepted.get("count", 0) / seconds
    # Drained at the rate it was served while refusing the excess, not at the idle capacity:
    # the goodput verdict keeps that rate honest.
    bound_s = 2 * (BATCHING.max_queue_size + BATCHING.max_batch_size) / max(accepted_rps, 1e-9)
    offered = len(over.statuses) / seconds
    verdicts = {
        "offered >= 10x capacity": offered >= 10 * capacity,
        "queue depth <= max_queue_size": bool(queues) and max(queues) <= BATCHING.max_queue_size,
        "every refusal is 503 with Retry-After": not others and over.missing_retry_after == 0,
        "refusal p99 < 5 ms": bool(refused) and refused["p99_ms"] < 5,
        "goodput >= 50% of capacity": accepted_rps >= 0.5 * capacity,
        "accepted p99 bounded (≤ bound, not growing)": bool(accepted)
        and accepted["p99_ms"] <= bound_s * 1000
        and halves[1] <= 1.5 * halves[0],
        "RSS growth < 50 MB": rss_max - rss_before < 50,
        "latency normal within 2 s": recovery is not None and recovery <= 2,
        "no socket errors": over.socket_errors == 0 and after.socket_errors == 0,
    }
    return Report(
        capacity_rps=capacity,
        baseline=baseline,
        overload_seconds=seconds,
        connections=connections,
        offered_rps=offered,
        offered_over_capacity=offered / capacity,
        accepted_rps=accepted_rps,
        accepted=accepted,
        accepted_p99_halves_ms=halves,
        server_cpu_cores=server_cpu,
        refused=refused,
        refused_without_retry_after=over.missing_retry_after,
        other_statuses=others,
        socket_errors=over.socket_errors + after.socket_errors,
        max_queue_depth=max(queues, default=float("nan")),
        max_queue_size=BATCHING.max_queue_size,
        queue_scrape_failures=sampler.failures,
        rss_before_mb=rss_before,
        rss_max_mb=rss_max,
        rss_after_mb=rss_after,
        recovery_threshold_ms=threshold * 1000,
        recovery_s=recovery,
        recovery_p99_per_half_second_ms=windows,
        accepted_p99_bound_ms=bound_s * 1000,
        verdicts={name: bool(ok) for name, ok in verdicts.items()},
    )


def render(data: dict[str, Any]) -> str:
    r = Report(**{k: v for k, v in data.items() if k != "meta"})
    fmt = lambda d: ", ".join(f"{k} {v:.2f}" for k, v in d.items() if k != "count")  # noqa: E731
    lines = [
        "# Overload",
        "",
        *machine_lines(data["meta"]),
        "",
        f"Model `{MODEL}` (x FP32 [-1, {WIDTH}], {DEPTH} chained MatMuls), server pinned to core "
        f"{SERVER_CORE}, client to core {CLIENT_CORE}; batching max batch "
        f"{BATCHING.max_batch_size}, delay {BATCHING.max_queue_delay_ms} ms, max queue "
        f"{BATCHING.max_queue_size}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| capacity (48 connections, no refusals) | {r.capacity_rps:.0f} req/s |",
        f"| baseline latency (1 client at {PROBE:.0%} of capacity) | {fmt(r.baseline)} ms |",
        f"| offered during overload (open loop, {r.connections} connections, "
        f"{r.overload_seconds:.0f} s) | "
        f"{r.offered_rps:.0f} req/s = {r.offered_over_capacity:.1f} × capacity |",
        f"| accepted | {r.accepted_rps:.0f} req/s, {fmt(r.accepted)} ms |",
        f"| accepted p99, first / second half of the overload | "
        f"{r.accepted_p99_halves_ms[0]:.0f} / {r.accepted_p99_halves_ms[1]:.0f} ms |",
        f"| server CPU during the overload | {r.server_cpu_cores:.2f} cores (pinned to 1) |",
        f"| refused (503) | {r.refused.get('count', 0)} requests, {fmt(r.refused)} ms |",
        f"| 503 without Retry-After / other statuses / socket errors | "
        f"{r.refused_without_retry_after} / {r.other_statuses or 0} / {r.socket_errors} |",
        f"| max queue depth sampled (limit) | {r.max_queue_depth:.0f} ({r.max_queue_size}); "
        f"{r.queue_scrape_failures} scrapes failed |",
        f"| resident memory before / max / after | {r.rss_before_mb:.1f} / {r.rss_max_mb:.1f} / "
        f"{r.rss_after_mb:.1f} MB |",
        "| accepted p99 bound (2 × (queue + batch) / accepted req/s) | "
        f"{r.accepted_p99_bound_ms:.0f} ms |",
        f"| back to normal (≤ {r.recovery_threshold_ms:.1f} ms = 2 × baseline p99) after | "
        f"{'never within 5 s' if r.recovery_s is None else f'{r.recovery_s:.2f} s'} |",
        "| p99 latency per 0.5 s after the load stopped | "
        + ", ".join(f"{v:.0f}" for v in r.recovery_p99_per_half_second_ms)
        + " ms |",
        "",
        "| target | met |",
        "|---|---|",
        *(f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in r.verdicts.items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=512)
    parser.add_argument("--factor", type=float, default=12, help="offered load ÷ capacity")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the server is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    WORK.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.overload " + " ".join(argv or sys.argv[1:])
    meta = machine(command.strip())
    report = run(args.seconds, args.connections, args.factor, WORK)
    print(write_report(args.out, "overload", {"meta": meta, **asdict(report)}, render))


if __name__ == "__main__":
    main()
