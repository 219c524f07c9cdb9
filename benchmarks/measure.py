"""Closed-loop measurement of servers: what to send each (a `Target` per protocol), one point
(a load run with the server's CPU and, for ours, mean batch size over the same window), every
point of one launch, and raw ONNX Runtime's batch sweep."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import grpc_wire
from benchmarks.bodies import write_requests
from benchmarks.closedloop import LoadError, LoadResult, run_h2load, run_wrk
from benchmarks.config import BenchConfig
from benchmarks.contenders import Contender, launch_for
from benchmarks.harness.servers import Launch, ServerProcess, serve
from benchmarks.procstat import counter_totals, cpu_seconds
from benchmarks.workload import Workload

log = logging.getLogger(__name__)

_COUNTERS = ("inductive_inference_count_total", "inductive_inference_exec_count_total")
# What a failed server launch or load run raises; the suite records it and goes on.
FAILURES = (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError, LoadError)


@dataclass(frozen=True)
class Target:
    """What a load generator sends for one protocol: wrk replays `files` (whole HTTP/1.1
    requests) to `path`; for gRPC, h2load posts the one frame in `files` to the gRPC port."""

    protocol: str  # "json", "binary" or "grpc"
    path: str
    files: list[Path]
    grpc_port: int | None = None
    answer_bytes: int | None = None  # gRPC: DATA bytes of one good answer

    @property
    def grpc(self) -> bool:
        return self.protocol == "grpc"


def http_targets(workload: Workload, work_dir: Path) -> dict[str, Target]:
    directory = work_dir / "requests"
    return {
        protocol: Target(protocol, workload.path, write_requests(workload, protocol, directory))
        for protocol in ("json", "binary")
    }


def grpc_body(workload: Workload, work_dir: Path) -> Path:
    """The gRPC request frame h2load posts (the workload's first sample: h2load sends one body)."""
    path = work_dir / "requests" / f"{workload.name}-grpc.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(grpc_wire.infer_request(workload.name, workload.samples[0]))
    return path


def measure_point(
    server: ServerProcess,
    target: Target,
    connections: int,
    duration_s: float,
    client_core: int | str | None,
    threads: int = 1,
) -> dict[str, Any]:
    """One closed-loop run against a running server, with its CPU use and mean batch size."""
    counters = counter_totals(server.metrics_url, _COUNTERS) if server.metrics_url else None
    cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
    result = load(server, target, connections, duration_s, client_core, threads)
    cpu1, wall1 = cpu_seconds(server.pid), time.monotonic()
    point: dict[str, Any] = {"concurrency": connections, **result.to_dict()}
    point["server_cpu"] = (cpu1 - cpu0) / (wall1 - wall0)  # cores busy, 1.0 = the whole core
    point["mean_batch"] = None
    if counters is not None and server.metrics_url:
        after = counter_totals(server.metrics_url, _COUNTERS)
        inferences = after[_COUNTERS[0]] - counters[_COUNTERS[0]]
        executions = after[_COUNTERS[1]] - counters[_COUNTERS[1]]
        point["mean_batch"] = inferences / executions if executions else None
    return point


def load(
    server: ServerProcess,
    target: Target,
    connections: int,
    duration_s: float,
    client_core: int | str | None,
    threads: int = 1,
) -> LoadResult:
    if target.grpc:
        return run_h2load(
            f"http://127.0.0.1:{target.grpc_port}{grpc_wire.INFER_PATH}",
            target.files[0],
            connections=connections,
            duration_s=duration_s,
            core=client_core,
            headers=grpc_wire.HEADERS,
            answer_bytes=target.answer_bytes,
        )
    return run_wrk(
        server.url + target.path,
        target.files,
        connections=connections,
        duration_s=duration_s,
        core=client_core,
        threads=threads,
    )


def grpc_answer_bytes(target: Target) -> int:
    """One gRPC call before the load: it must answer outputs, and its size tells h2load's good
    answers from failed calls (both are HTTP 200)."""
    assert target.grpc_port is not None
    answer = grpc_wire.call(target.grpc_port, target.files[0])
    if not answer:
        raise LoadError(f"the gRPC call to port {target.grpc_port} failed (no message)")
    grpc_wire.infer_response(answer)  # raises if it is no ModelInferResponse
    return len(answer)


def measure_launch(
    launch: Launch,
    targets: list[Target],
    *,
    concurrency: tuple[int, ...],
    duration_s: float,
    warmup_s: float,
    server_core: int | str | None,
    client_core: int | str | None,
    log_path: Path,
    name: str,
) -> dict[str, dict[str, Any]]:
    """Starts `launch` once and measures every target at every concurrency (each target warmed
    up first: ONNX Runtime allocations, the server's caches, the TCP stack). Returns
    {protocol: {"points": [...]}} or, when the launch failed, {protocol: {"error": ...}}."""
    entries: dict[str, dict[str, Any]] = {t.protocol: {"points": []} for t in targets}
    try:
        with serve(launch, core=server_core, log_path=log_path) as server:
            for target in targets:
                if target.grpc:
                    target = replace(target, answer_bytes=grpc_answer_bytes(target))
                load(server, target, max(concurrency), warmup_s, client_core)
                for connections in concurrency:
                    point = measure_point(server, target, connections, duration_s, client_core)
                    log.info(
                        "%s %s c=%d: %.0f req/s p50 %.2f ms p99 %.2f ms errors %d",
                        name,
                        target.protocol,
                        connections,
                        point["throughput"],
                        point["latency_ms"]["p50"],
                        point["latency_ms"]["p99"],
                        point["errors"],
                    )
                    entries[target.protocol]["points"].append(point)
    except FAILURES as exc:
        log.error("%s failed: %s", name, exc)
        for entry in entries.values():
            entry["error"] = str(exc)[-2000:]
    return entries


def run_contender(
    contender: Contender, config: BenchConfig, workload: Workload, target: Target
) -> dict[str, Any]:
    """One of our fixed contenders (ours, the floor, naive FastAPI) at every concurrency; a gRPC
    target is sent to the gRPC port this launch of ours listens on."""
    launch = launch_for(contender, workload, config.store, config.work_dir)
    if target.grpc:
        if not launch.grpc_address:
            raise ValueError(f"{contender.key}: this launch has no gRPC door")
        target = replace(target, grpc_port=int(launch.grpc_address.rsplit(":", 1)[1]))
    entries = measure_launch(
        launch,
        [target],
        concurrency=config.concurrency,
        duration_s=config.duration_s,
        warmup_s=config.warmup_s,
        server_core=config.server_core,
        client_core=config.client_core,
        log_path=config.work_dir / "logs" / f"{workload.name}-{contender.key}.log",
        name=f"{workload.name} {contender.key}",
    )
    return {"label": contender.label, "protocol": contender.protocol, **entries[contender.protocol]}


def run_raw(config: BenchConfig, model: str) -> list[dict[str, Any]]:
    """Raw ONNX Runtime's batch sweep, in a process of its own pinned to the server core."""
    argv = [
        *("taskset", "-c", str(config.server_core), sys.executable, "-m", "benchmarks.raw_ort"),
        *("--store", str(config.store), "--model", model),
        *("--cache", str(config.work_dir / "cache")),
        *("--batches", ",".join(map(str, config.raw_batches))),
        *("--seconds", str(config.raw_seconds)),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    for row in rows:
        log.info(
            "%s raw ORT batch %d: %.0f samples/s, p50 %.3f ms",
            model,
            row["batch"],
            row["throughput"],
            row["p50_ms"],
        )
    return rows
