"""One model, every contender: raw ONNX Runtime's batch sweep, then each server under wrk at
each concurrency, with the server's CPU and (ours) mean batch size over the same window."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bodies import write_requests
from benchmarks.config import CONTENDERS, BenchConfig, Contender
from benchmarks.contenders.mlserver import mlserver_launch
from benchmarks.procstat import counter_totals, cpu_seconds
from benchmarks.servers import Launch, Running, free_port, serve
from benchmarks.workload import Workload, load_workload
from benchmarks.wrk import run_wrk
from model_store import open_store

log = logging.getLogger(__name__)

_NAIVE = Path(__file__).with_name("contenders") / "naive_fastapi.py"
_FLOOR = Path(__file__).with_name("contenders") / "floor_uvloop.py"
_COUNTERS = ("inductive_inference_count_total", "inductive_inference_exec_count_total")


def ours_launch(
    config: BenchConfig,
    model: str,
    batching: bool,
    *,
    providers: str = "cpu",
    intra_op_threads: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Launch:
    """`python -m service` serving only `model`, loaded once (no store polling during a run)."""
    port = free_port()
    return Launch(
        argv=[
            *(sys.executable, "-m", "service", "--store", str(config.store)),
            *("--port", str(port), "--models", model, "--model-control-mode", "none"),
            *("--providers", providers, "--intra-op-threads", str(intra_op_threads)),
            *("--log-level", "warning"),
        ],
        port=port,
        ready_path=f"/v2/models/{model}/ready",
        env={
            "INDUCTIVE_BATCHING": "true" if batching else "false",
            "INDUCTIVE_CACHE_DIR": str(config.work_dir / "cache"),
            **(extra_env or {}),
        },
        metrics_path="/metrics",
    )


def launch_for(contender: Contender, config: BenchConfig, workload: Workload) -> Launch:
    if contender.kind == "ours":
        return ours_launch(config, workload.name, contender.batching)
    if contender.kind in ("naive", "floor"):
        port = free_port()
        script = _NAIVE if contender.kind == "naive" else _FLOOR
        argv = [
            *(sys.executable, str(script), "--model", str(workload.model_path)),
            *("--name", workload.name, "--port", str(port)),
        ]
        return Launch(argv, port, ready_path=f"/v2/models/{workload.name}/ready")
    batching = open_store(str(config.store)).config(workload.name).batching
    return mlserver_launch(
        workload.name,
        workload.model_path,
        config.work_dir,
        max_batch_size=1 if workload.ragged else batching.max_batch_size,
        max_batch_time_s=batching.max_queue_delay_ms / 1000,
    )


def measure_point(
    running: Running,
    request_files: list[Path],
    path: str,
    connections: int,
    duration_s: float,
    client_core: int | str | None,
    threads: int = 1,
) -> dict[str, Any]:
    """One wrk run against a running server, with its CPU use and mean batch size."""
    counters = counter_totals(running.metrics_url, _COUNTERS) if running.metrics_url else None
    cpu0, wall0 = cpu_seconds(running.pid), time.monotonic()
    result = run_wrk(
        running.url + path,
        request_files,
        connections=connections,
        duration_s=duration_s,
        core=client_core,
        threads=threads,
    )
    cpu1, wall1 = cpu_seconds(running.pid), time.monotonic()
    point: dict[str, Any] = {"concurrency": connections, **result.to_dict()}
    point["server_cpu"] = (cpu1 - cpu0) / (wall1 - wall0)  # cores busy, 1.0 = the whole core
    point["mean_batch"] = None
    if counters is not None and running.metrics_url:
        after = counter_totals(running.metrics_url, _COUNTERS)
        inferences = after[_COUNTERS[0]] - counters[_COUNTERS[0]]
        executions = after[_COUNTERS[1]] - counters[_COUNTERS[1]]
        point["mean_batch"] = inferences / executions if executions else None
    return point


def run_contender(
    contender: Contender, config: BenchConfig, workload: Workload, request_files: list[Path]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"label": contender.label, "protocol": contender.protocol, "points": []}
    log_path = config.work_dir / "logs" / f"{workload.name}-{contender.key}.log"
    try:
        launch = launch_for(contender, config, workload)
        with serve(launch, core=config.server_core, log_path=log_path) as running:
            # Warm-up: ONNX Runtime allocations, the server's caches, the TCP stack.
            run_wrk(
                running.url + workload.path,
                request_files,
                connections=max(config.concurrency),
                duration_s=config.warmup_s,
                core=config.client_core,
            )
            for connections in config.concurrency:
                point = measure_point(
                    running,
                    request_files,
                    workload.path,
                    connections,
                    config.duration_s,
                    config.client_core,
                )
                log.info(
                    "%s %s c=%d: %.0f req/s p50 %.2f ms p99 %.2f ms errors %d",
                    workload.name,
                    contender.key,
                    connections,
                    point["throughput"],
                    point["latency_ms"]["p50"],
                    point["latency_ms"]["p99"],
                    point["errors"],
                )
                entry["points"].append(point)
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        log.error("%s %s failed: %s", workload.name, contender.key, exc)
        entry["error"] = str(exc)[-2000:]
    return entry


def run_raw(config: BenchConfig, model: str) -> list[dict[str, Any]]:
    argv = [
        *("taskset", "-c", str(config.server_core), sys.executable, "-m", "benchmarks.raw_ort"),
        *("--store", str(config.store), "--model", model),
        *("--cache", str(config.work_dir / "cache")),
        *("--batches", ",".join(map(str, config.raw_batches))),
        *("--seconds", str(config.raw_seconds)),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def run_model(config: BenchConfig, model: str) -> dict[str, Any]:
    workload = load_workload(config.store, model, config.work_dir / "cache")
    result: dict[str, Any] = {
        "version": workload.version,
        "samples": len(workload.samples),
        "ragged": bool(workload.ragged),
        "contenders": {},
    }
    if "raw" in config.contenders:
        result["raw"] = run_raw(config, model)
        for row in result["raw"]:
            log.info(
                "%s raw ORT batch %d: %.0f samples/s, p50 %.3f ms",
                model,
                row["batch"],
                row["throughput"],
                row["p50_ms"],
            )
    files = {
        p: write_requests(workload, p, config.work_dir / "requests") for p in ("json", "binary")
    }
    for key in config.contenders:
        if key in CONTENDERS:
            contender = CONTENDERS[key]
            result["contenders"][key] = run_contender(
                contender, config, workload, files[contender.protocol]
            )
    if "raw" in config.contenders and result["contenders"]:
        # Again after the servers: a VM's speed drifts within minutes, and the report judges
        # each server against the faster of the two sweeps.
        result["raw_after"] = run_raw(config, model)
    return result
