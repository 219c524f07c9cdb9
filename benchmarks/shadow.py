"""What a shadow costs the champion: the same server, the same load, with 0 %, then some, then
all of the champion's requests mirrored to a candidate (the same model published twice, so each
mirrored request costs what an answer does).

    python -m benchmarks.shadow [--model cnn] [--mirrors 0 0.1 1] [--rounds 2] [--rps 500]
                                [--seconds 10] [--concurrency 32]

The server runs pinned to core 0 (one ONNX Runtime thread), the clients to core 1. For each
mirror share, in alternating rounds:

- at a fixed offered rate below capacity (`--rps`, JSON requests from benchmarks/openloop.py:
  open loop, so a slower server shows as latency, not as fewer requests): the champion's p50/p99
  latency, counted from each request's due time;
- at saturation (wrk, `--concurrency` connections, binary requests): throughput, p50/p99, and the
  server's CPU per answered request, event loop and the other threads (both versions' batches);
- the shadow's own counts: requests compared and dropped, agreement.

On a CPU-only host the candidate's batches run on the cores the champion uses, so a mirror share
costs the champion CPU in proportion (what the saturated figures show); what the design rules
out is waiting: no answer waits for the candidate, and a candidate behind gets no more mirrors
(the fixed-rate latency shows what is left). Results: `benchmarks/results/shadow/` (JSON and
report.md); take records on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bodies import write_requests
from benchmarks.closedloop import run_wrk
from benchmarks.config import DEFAULT_STORE, RESULTS_DIR, WORK_DIR
from benchmarks.harness.servers import Launch, ServerProcess, free_port, serve
from benchmarks.openloop import run_open_loop
from benchmarks.procstat import thread_times
from benchmarks.reporting import cpu_model
from benchmarks.workload import Workload, ensure_store, load_workload
from model_store import ModelStore, VersionPolicy, add_onnx, open_store
from model_store.policy import rollback_canary, start_canary

OUT_DIR = RESULTS_DIR / "shadow"
POLL_S = 0.2


def build_store(source: Path, model: str, work: Path) -> tuple[ModelStore, Workload]:
    """`model` twice (v1 champion, stable; v2 candidate) in a fresh store under `work`."""
    workload = load_workload(source, model, work / "source-cache")
    store = open_store(work / "store")
    config = open_store(str(source)).config(model)
    config = config.model_copy(update={"version_policy": VersionPolicy(kind="alias")})
    for version in (1, 2):
        assert add_onnx(store, model, workload.model_path, config=config) == version
    store.promote(model, 1)
    return store, workload


def set_mirror(store: ModelStore, model: str, share: float) -> None:
    if store.config(model).version_policy.kind == "canary":
        rollback_canary(store, model)
    if share > 0:
        start_canary(store, model, 2, weight=0.0, mirror=share)


def wait_for_share(server: ServerProcess, model: str, share: float) -> None:
    key = f'inductive_canary_mirror_ratio{{candidate="2",champion="1",model="{model}"}}'
    deadline = time.monotonic() + 60
    while server.metrics().get(key, 0.0) != share:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server did not apply mirror {share} within 60 s")
        time.sleep(POLL_S)
    time.sleep(4 * POLL_S)  # a version leaving (mirror 0) drains and unloads


def shadow_counts(server: ServerProcess, model: str) -> dict[str, float]:
    pair = f'candidate="2",champion="1",model="{model}"'
    m = server.metrics()
    counts = {
        o: m.get(f'inductive_shadow_requests_total{{{pair},outcome="{o}"}}', 0.0)
        for o in ("compared", "dropped", "failed")
    }
    counts["samples"] = m.get(f"inductive_shadow_samples_total{{{pair}}}", 0.0)
    counts["agreeing"] = m.get(f"inductive_shadow_agreement_samples_total{{{pair}}}", 0.0)
    return counts


def measure(
    server: ServerProcess,
    workload: Workload,
    files: dict[str, list[Path]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    counts_before = shadow_counts(server, workload.name)
    # The fixed rate: the suite's open-loop generator, JSON requests, on the client core;
    # latency counts from each request's due time. One second first warms the server up.
    for seconds in (1.0, args.seconds):
        open_loop = run_open_loop(
            server.url, files["json"], rate=args.rps, seconds=seconds, connections=32, core=1
        )
    url = server.url + workload.path
    run_wrk(url, files["binary"], connections=args.concurrency, duration_s=2, core=1)  # warm-up
    before = thread_times(server.pid)
    wrk = run_wrk(
        url, files["binary"], connections=args.concurrency, duration_s=args.seconds, core=1
    )
    after = thread_times(server.pid)
    counts_after = shadow_counts(server, workload.name)
    answered = max(wrk.requests, 1)

    def cpu_us(threads: set[int]) -> float:
        spent = sum(sum(after[t]) - sum(before.get(t, (0.0, 0.0))) for t in threads)
        return spent / answered * 1e6

    loop = {server.pid} & after.keys()
    delta = {k: counts_after[k] - counts_before[k] for k in counts_after}
    return {
        "fixed_rate": {
            "requests": open_loop.scheduled,
            "failures": open_loop.errors,
            "sent_rate": open_loop.sent_rate,
            "p50_ms": open_loop.latency_ms["p50"],
            "p99_ms": open_loop.latency_ms["p99"],
        },
        "saturated": {
            "throughput": wrk.throughput,
            "p50_ms": wrk.latency_ms["p50"],
            "p99_ms": wrk.latency_ms["p99"],
            "errors": wrk.errors,
            "loop_us": cpu_us(loop),
            "other_us": cpu_us(after.keys() - loop),
        },
        "shadow": delta,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shadow", description=__doc__)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--mirrors", type=float, nargs="+", default=[0.0, 0.1, 1.0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rps", type=float, default=500, help="the fixed offered rate")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured phase")
    parser.add_argument("--concurrency", type=int, default=32, help="wrk connections")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where results go")
    args = parser.parse_args(argv)
    ensure_store(args.store, (args.model,))
    work = WORK_DIR / "shadow"
    if work.exists():
        shutil.rmtree(work)  # a fresh store each run: v1 and v2
    store, workload = build_store(args.store, args.model, work)
    files = {p: write_requests(workload, p, work / "requests") for p in ("json", "binary")}
    port = free_port()
    argv_server = [
        *(sys.executable, "-m", "service", "--store", store.uri, "--port", str(port)),
        *("--models", args.model, "--providers", "cpu", "--intra-op-threads", "1"),
        *("--model-control-mode", "poll", "--poll-interval-s", str(POLL_S)),
        *("--log-level", "warning", "--cache-dir", str(work / "cache")),
    ]  # fmt: skip
    launch = Launch(argv_server, port, ready_path=f"/v2/models/{args.model}/ready")
    results: dict[str, list[dict[str, Any]]] = {str(m): [] for m in args.mirrors}
    with serve(launch, core=0, log_path=work / "server.log") as server:
        for round_number in range(1, args.rounds + 1):
            for share in args.mirrors:
                set_mirror(store, args.model, share)
                wait_for_share(server, args.model, share)
                result = measure(server, workload, files, args)
                results[str(share)].append(result)
                print(f"round {round_number} mirror {share:g}: {json.dumps(result)}", flush=True)
    set_mirror(store, args.model, 0.0)
    report = markdown(results, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.model}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "report.md").write_text(report)
    print(report)


def markdown(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    def median(rows: list[dict[str, Any]], part: str, key: str) -> float:
        return statistics.median(row[part][key] for row in rows)

    command = "python -m benchmarks.shadow " + " ".join(sys.argv[1:])
    lines = [
        f"# What a shadow costs the champion (`{args.model}`)",
        "",
        f"Command: `{command.strip()}`; {cpu_model()}; load average at the end "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores. Medians of {args.rounds} rounds.",
        "",
        f"| mirror | p50 ms at {args.rps:g} req/s | p99 ms | failed | saturated req/s | p50 ms "
        "| p99 ms | event loop µs/req | other threads µs/req | compared | dropped | agreement |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for share, rows in results.items():
        compared = sum(r["shadow"]["compared"] for r in rows)
        dropped = sum(r["shadow"]["dropped"] for r in rows)
        samples = sum(r["shadow"]["samples"] for r in rows)
        agreeing = sum(r["shadow"]["agreeing"] for r in rows)
        agreement = f"{agreeing / samples:.3f}" if samples else "-"
        lines.append(
            f"| {float(share):.0%} | {median(rows, 'fixed_rate', 'p50_ms'):.2f} "
            f"| {median(rows, 'fixed_rate', 'p99_ms'):.2f} "
            f"| {sum(r['fixed_rate']['failures'] for r in rows)} "
            f"| {median(rows, 'saturated', 'throughput'):,.0f} "
            f"| {median(rows, 'saturated', 'p50_ms'):.2f} "
            f"| {median(rows, 'saturated', 'p99_ms'):.2f} "
            f"| {median(rows, 'saturated', 'loop_us'):.1f} "
            f"| {median(rows, 'saturated', 'other_us'):.1f} "
            f"| {compared:,.0f} | {dropped:,.0f} | {agreement} |"
        )
    lines += [
        "",
        "Fixed rate: the open-loop generator (JSON, 32 connections) on core 1; saturated: wrk "
        "on core 1 "
        f"with {args.concurrency} connections (binary). The server (core 0) serves the champion "
        "and, mirrored, the candidate: the same model twice, so a mirrored request costs what "
        "an answer does and agreement is 1.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
