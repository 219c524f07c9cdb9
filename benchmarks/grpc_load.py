"""Our gRPC door under h2load: throughput, latency, and (with --profile) where its µs go.

    python -m benchmarks.grpc_load --model cnn                      # h2load, c=32, one core
    python -m benchmarks.grpc_load --model cnn --http               # + wrk binary, same server
    python -m benchmarks.grpc_load --model cnn --profile --seconds 20   # + py-spy, as profile.py

A unary gRPC call is an HTTP/2 POST to `/inference.GRPCInferenceService/ModelInfer` with
`content-type: application/grpc`, `te: trailers` and a length-prefixed protobuf body (one byte
"not compressed", four bytes big-endian length, the serialized ModelInferRequest: the model's
first benchmark sample, all inputs raw, as tritonclient.grpc sends them). h2load replays that
body (benchmarks/grpc_wire.py writes it) with `-c` connections of `-m` streams each, through the
suite's closed-loop driver (benchmarks/closedloop.py), the server pinned to the server core and
h2load to the client core, as wrk in the other benchmarks.

h2load counts an HTTP 200 as a success, but a gRPC call's outcome is the `grpc-status` trailer,
which h2load does not read: a refused call is an HTTP 200 too. So every run also counts the
calls the server answered successfully (its `/metrics`, protocol="grpc") and fails unless that
count equals h2load's. Latency percentiles come from h2load's per-request log.

Short runs check the command; figures of record need a quiet two-core machine (README).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from benchmarks import grpc_wire
from benchmarks.bodies import write_requests
from benchmarks.closedloop import LoadResult, run_h2load, run_wrk
from benchmarks.config import DEFAULT_STORE, RESULTS_DIR, WORK_DIR, BenchConfig
from benchmarks.contenders import ours_launch
from benchmarks.harness.servers import ServerProcess, serve
from benchmarks.procstat import counter_totals, thread_times
from benchmarks.profile import compute_per_sample, cpu_by_thread, event_loop_breakdown, summarize
from benchmarks.reporting import cpu_model
from benchmarks.workload import ensure_store, load_workload

_REQUESTS = "inductive_inference_requests_total"
_BATCH_METRICS = (
    "inductive_inference_compute_duration_seconds_sum",
    "inductive_inference_compute_duration_seconds_count",
    "inductive_inference_batch_size_sum",
)


def grpc_outcomes(metrics_url: str, model: str) -> dict[str, float]:
    """The server's gRPC request count for `model` by outcome (all versions)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    outcomes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if s.name == _REQUESTS and labels["protocol"] == "grpc" and labels["model"] == model:
                outcomes[labels["outcome"]] = outcomes.get(labels["outcome"], 0.0) + s.value
    return outcomes


def measured(
    server: ServerProcess,
    body: Path,
    model: str,
    *,
    requests: int,
    connections: int,
    streams: int,
    core: int | str | None,
) -> LoadResult:
    """`requests` calls of `body` under h2load, whose successes the server confirms: h2load's
    HTTP 200s must be exactly the calls the server answered with grpc-status 0, and the server
    must have failed none; RuntimeError otherwise."""
    if server.metrics_url is None or not server.grpc_address:
        raise RuntimeError("measured() needs our server with its gRPC door and /metrics")
    before = grpc_outcomes(server.metrics_url, model)
    result = run_h2load(
        f"http://{server.grpc_address}{grpc_wire.INFER_PATH}",
        body,
        connections=connections,
        streams=streams,
        requests=requests,
        duration_s=0,
        core=core,
        headers=grpc_wire.HEADERS,
    )
    after = grpc_outcomes(server.metrics_url, model)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    succeeded = delta.pop("success", 0.0)
    # Without `answer_bytes` h2load's status errors are its non-2xx answers alone.
    http_200 = result.requests - result.status_errors
    if succeeded != http_200 or any(delta.values()):
        raise RuntimeError(
            f"h2load counted {http_200} HTTP 200s; the server answered {succeeded:.0f} "
            f"calls with grpc-status 0 and failed {delta}"
        )
    return result


def _line(label: str, r: LoadResult) -> str:
    lat = r.latency_ms
    return (
        f"| {label} | {r.throughput:,.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} | {r.requests:,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grpc_load", description=__doc__)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--requests", type=int, default=20_000, help="calls per measured run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--streams", type=int, default=1, help="concurrent calls per connection")
    parser.add_argument("--http", action="store_true", help="also wrk, binary, same server")
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk's run; py-spy's")
    parser.add_argument("--profile", action="store_true", help="py-spy while h2load runs")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="C/C++/Cython frames too (slower)")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "profile")
    args = parser.parse_args()
    config = BenchConfig(store=args.store, models=(args.model,))
    ensure_store(config.store, config.models)
    workload = load_workload(config.store, args.model, WORK_DIR / "cache")
    body = WORK_DIR / "requests" / f"{args.model}-grpc.bin"
    body.parent.mkdir(parents=True, exist_ok=True)
    body.write_bytes(grpc_wire.infer_request(args.model, workload.samples[0]))
    launch = ours_launch(config.store, config.work_dir, args.model, True)
    concurrency = args.connections * args.streams
    log_path = WORK_DIR / "logs" / f"grpc-load-{args.model}.log"
    rows = []
    with serve(launch, core=config.server_core, log_path=log_path) as server:
        load = {"connections": args.connections, "streams": args.streams,
                "core": config.client_core}  # fmt: skip
        measured(server, body, args.model, requests=2000, **load)  # warm-up
        if args.profile:
            profile_stem = f"{args.model}-grpc-c{concurrency}" + ("-native" if args.native else "")
            result = _profiled(server, body, args, config, profile_stem)
        else:
            result = measured(server, body, args.model, requests=args.requests, **load)
        rows.append(_line(f"gRPC, h2load -c {args.connections} -m {args.streams}", result))
        if args.http:
            files = write_requests(workload, "binary", WORK_DIR / "requests")
            url = server.url + workload.path
            run_wrk(url, files, connections=concurrency, duration_s=2, core=config.client_core)
            http = run_wrk(url, files, connections=concurrency, duration_s=args.seconds,
                           core=config.client_core)  # fmt: skip
            rows.append(_line(f"HTTP binary, wrk -c {concurrency}", http))
            rows.append(f"\ngRPC / HTTP throughput: {result.throughput / http.throughput:.2f}")
    report = "\n".join([
        f"`{args.model}`, server on core {config.server_core}, load on core "
        f"{config.client_core}; {cpu_model()}",
        "",
        "| door | req/s | p50 ms | p99 ms | answered |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "Every gRPC call h2load counted was answered with grpc-status 0 (the server's count).",
    ])  # fmt: skip
    print(report)


def _profiled(
    server: ServerProcess,
    body: Path,
    args: argparse.Namespace,
    config: BenchConfig,
    stem: str,
) -> LoadResult:
    """h2load under py-spy; writes <out>/<stem>.speedscope.json and .md as benchmarks.profile."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    args.out.mkdir(parents=True, exist_ok=True)
    profile_path = args.out / f"{stem}.speedscope.json"
    spy = subprocess.Popen(
        [pyspy, "record", "--pid", str(server.pid), "--duration", str(round(args.seconds)),
         "--rate", str(args.rate), "--format", "speedscope", "--output", str(profile_path),
         # Not pausing the server keeps its timing honest; native stacks need the pause.
         "--native" if args.native else "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert server.metrics_url is not None
    batches_before = counter_totals(server.metrics_url, _BATCH_METRICS)
    before, started = thread_times(server.pid), time.monotonic()
    result = measured(
        server, body, args.model, requests=args.requests, connections=args.connections,
        streams=args.streams, core=config.client_core,
    )  # fmt: skip
    wall = time.monotonic() - started
    # Per request over the wall time measured here (h2load's own excludes its start-up).
    load = replace(result, duration_s=wall, throughput=result.requests / wall)
    threads, loop_us = cpu_by_thread(server.pid, before, thread_times(server.pid), wall, load)
    compute = compute_per_sample(batches_before, counter_totals(server.metrics_url, _BATCH_METRICS))
    _, err = spy.communicate(timeout=120)
    if spy.returncode != 0:
        sys.exit(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-1500:]}")
    speedscope = json.loads(profile_path.read_text())
    header = (
        f"# Profile: `{args.model}`, gRPC (raw contents), c={args.connections}×{args.streams}, "
        f"batching on\n\n"
        f"Under h2load load: {result.throughput:,.0f} req/s, p50 {result.latency_ms['p50']:.2f} "
        f"ms, p99 {result.latency_ms['p99']:.2f} ms, {result.errors} failed. py-spy sampled the "
        f"first {args.seconds:g} s of {args.requests:,} calls. Command: `python -m "
        f"benchmarks.grpc_load {' '.join(sys.argv[1:])}`\n\nMachine: {cpu_model()}.\n\n"
        f"{threads}\n{compute}\n"
    )
    summary = event_loop_breakdown(speedscope, loop_us) + "\n" + summarize(speedscope)
    (args.out / f"{stem}.md").write_text(header + summary)
    print(header + summary)
    return result


if __name__ == "__main__":
    main()
