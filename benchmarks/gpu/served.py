"""Our service on the GPU under wrk at concurrency 64, binary protocol, one configuration per
server launch: batching on/off, fp16/fp32, I/O binding on/off, and a bulk-request setting."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.bodies import write_requests
from benchmarks.closedloop import run_wrk
from benchmarks.config import BenchConfig
from benchmarks.contenders import ours_launch
from benchmarks.harness.servers import serve
from benchmarks.measure import FAILURES, Target, measure_point
from benchmarks.workload import Workload, collate

log = logging.getLogger(__name__)
CONCURRENCY = 64


@dataclass(frozen=True)
class ServedConfig:
    label: str
    precision: str = "fp32"
    io_binding: bool = True
    batching: bool = True
    request_batch: int = 1  # samples per request
    max_batch_size: int | None = None  # None: the model's config.json


CONFIGS = (
    ServedConfig("fp32, batching on, I/O binding on"),
    ServedConfig("fp32, batching off", batching=False),
    ServedConfig("fp32, I/O binding off", io_binding=False),
    ServedConfig("fp16, batching on", precision="fp16"),
    ServedConfig("fp32, 32 samples/request, max batch 1024", request_batch=32, max_batch_size=1024),
    ServedConfig(
        "fp16, 32 samples/request, max batch 1024",
        precision="fp16",
        request_batch=32,
        max_batch_size=1024,
    ),
)


@dataclass(frozen=True)
class Placement:
    """Which cores the server and wrk get: halves of the machine, or one core each on two."""

    server: str
    client: str
    wrk_threads: int

    @staticmethod
    def for_machine() -> Placement:
        cores = len(os.sched_getaffinity(0))
        if cores < 4:
            return Placement("0", "1", 1)
        half = cores // 2
        return Placement(f"0-{half - 1}", f"{half}-{cores - 1}", min(4, half))


def _bulk(workload: Workload, samples: int) -> Workload:
    """Requests carrying `samples` samples each (ragged ones padded, with their lengths)."""
    count = len(workload.samples)
    rotated = [
        replace(workload, samples=workload.samples[i:] + workload.samples[:i]) for i in range(count)
    ]
    return replace(workload, samples=tuple(collate(w, samples) for w in rotated))


def run_served(
    bench: BenchConfig,
    workload: Workload,
    provider: str,
    configs: tuple[ServedConfig, ...],
    duration_s: float,
    warmup_s: float,
    work_dir: Path,
) -> list[dict[str, Any]]:
    placement = Placement.for_machine()
    rows: list[dict[str, Any]] = []
    for cfg in configs:
        load = workload if cfg.request_batch == 1 else _bulk(workload, cfg.request_batch)
        files = write_requests(load, "binary", work_dir / "requests" / f"b{cfg.request_batch}")
        env = {
            "INDUCTIVE_PRECISION": cfg.precision,
            "INDUCTIVE_IO_BINDING": str(cfg.io_binding).lower(),
        }
        if cfg.max_batch_size:
            env["INDUCTIVE_MAX_BATCH_SIZE"] = str(cfg.max_batch_size)
        launch = ours_launch(
            bench.store,
            bench.work_dir,
            workload.name,
            cfg.batching,
            providers=provider,
            intra_op_threads=2,
            extra_env=env,
        )
        log_path = work_dir / "logs" / f"gpu-{workload.name}-{len(rows)}.log"
        row: dict[str, Any] = {**cfg.__dict__, "concurrency": CONCURRENCY}
        try:
            with serve(launch, core=placement.server, log_path=log_path) as running:
                url = running.url + workload.path
                run_wrk(
                    url,
                    files,
                    connections=CONCURRENCY,
                    duration_s=warmup_s,
                    core=placement.client,
                    threads=placement.wrk_threads,
                )
                point = measure_point(
                    running,
                    Target("binary", workload.path, files),
                    CONCURRENCY,
                    duration_s,
                    placement.client,
                    placement.wrk_threads,
                )
        except FAILURES as exc:
            log.error("%s %s failed: %s", workload.name, cfg.label, exc)
            rows.append({**row, "error": str(exc)[-2000:]})
            continue
        point["samples_per_s"] = point["throughput"] * cfg.request_batch
        log.info(
            "%s %s: %.0f samples/s, p99 %.2f ms, mean batch %s, errors %d",
            workload.name,
            cfg.label,
            point["samples_per_s"],
            point["latency_ms"]["p99"],
            point["mean_batch"],
            point["errors"],
        )
        rows.append({**row, **point})
    return rows
