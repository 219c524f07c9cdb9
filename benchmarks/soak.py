"""Soak: half the server's capacity for a long while — zero errors, no memory growth trend, no
file-descriptor or thread leak.

    python -m benchmarks.soak [--minutes 10] [--out DIR]

Same model, server and load generators as `benchmarks.overload` (server pinned to core 0, load
to core 1): capacity is measured first (wrk, closed loop, 48 connections, 10 s), then the
open-loop generator offers half of it over 16 keep-alive connections for `--minutes`. Every 5 s
the server's resident memory, open file descriptors (/proc/<pid>/fd) and threads
(/proc/<pid>/task) are sampled.

Judged: no non-200 answer and no socket error; the least-squares slope of resident memory after
the first minute (allocator and caches warming up; half the run if shorter) projects < 5 MB of
growth over the run; the last fd and thread counts are no higher than the first. Writes
soak.json and soak.md to benchmarks/results/reliability/.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.overload import (
    CLIENT_CORE,
    MODEL,
    RESULTS,
    SERVER_CORE,
    WORK,
    build_store,
    closed_loop,
    infer_request,
    open_loop,
    percentiles,
    start_server,
)
from benchmarks.reporting import machine, machine_lines, write_report
from benchmarks.sampler import Sampler

CONNECTIONS = 16
SAMPLE_PERIOD_S = 5.0
WARM_UP_S = 60.0


@dataclass
class SoakReport:
    minutes: float
    capacity_rps: float
    offered_rps: float
    answered: int
    non_200: int
    socket_errors: int
    latency: dict[str, float]
    rss_first_mb: float
    rss_last_mb: float
    rss_fit_from_s: float
    rss_slope_mb_per_min: float
    rss_projected_growth_mb: float
    fds_first: int
    fds_last: int
    fds_max: int
    threads_first: int
    threads_last: int
    threads_max: int
    samples: list[dict[str, float]]
    verdicts: dict[str, bool]


def run(minutes: float, work: Path) -> SoakReport:
    os.sched_setaffinity(0, {CLIENT_CORE})
    store_dir = build_store(work)
    with start_server(store_dir, work / "soak-server.log") as server:
        request = infer_request(server.port)
        request_file = work / "soak-request.http"
        request_file.write_bytes(request)
        closed_loop(server.url, request_file, connections=8, seconds=3)  # warm-up
        capacity = closed_loop(server.url, request_file, connections=48, seconds=10).throughput
        sampler = Sampler(server, SAMPLE_PERIOD_S)
        sampler.start()
        seconds = minutes * 60
        soak = open_loop(
            server.port, request, rate=capacity / 2, seconds=seconds, connections=CONNECTIONS
        )
        samples = sampler.stop()
    statuses = soak.statuses
    t = np.asarray([s["t"] for s in samples])
    rss = np.asarray([s["rss_mb"] for s in samples])
    warm_up = min(WARM_UP_S, seconds / 2)
    steady = t >= warm_up
    slope_per_s = float(np.polyfit(t[steady], rss[steady], 1)[0]) if steady.sum() >= 3 else 0.0
    projected = float(slope_per_s * (t[steady][-1] - t[steady][0])) if steady.any() else 0.0
    fds = [int(s["fds"]) for s in samples]
    threads = [int(s["threads"]) for s in samples]
    non_200 = int((statuses != 200).sum())
    verdicts = {
        "zero errors": non_200 == 0 and soak.socket_errors == 0,
        "no memory growth trend (< 5 MB projected)": projected < 5,
        "no fd leak": fds[-1] <= fds[0],
        "no thread leak": threads[-1] <= threads[0],
    }
    return SoakReport(
        minutes=minutes,
        capacity_rps=capacity,
        offered_rps=len(statuses) / seconds,
        answered=len(statuses),
        non_200=non_200,
        socket_errors=soak.socket_errors,
        latency=percentiles(soak.latencies),
        rss_first_mb=float(rss[0]),
        rss_last_mb=float(rss[-1]),
        rss_fit_from_s=warm_up,
        rss_slope_mb_per_min=slope_per_s * 60,
        rss_projected_growth_mb=projected,
        fds_first=fds[0],
        fds_last=fds[-1],
        fds_max=max(fds),
        threads_first=threads[0],
        threads_last=threads[-1],
        threads_max=max(threads),
        samples=samples,
        verdicts={name: bool(ok) for name, ok in verdicts.items()},
    )


def render(data: dict[str, Any]) -> str:
    r = SoakReport(**{k: v for k, v in data.items() if k != "meta"})
    latency = ", ".join(f"{k} {v:.2f}" for k, v in r.latency.items() if k != "count")
    return "\n".join([
        "# Soak",
        "",
        *machine_lines(data["meta"]),
        "",
        f"Model `{MODEL}`, server pinned to core {SERVER_CORE}, client to core {CLIENT_CORE}; "
        f"open loop over {CONNECTIONS} keep-alive connections; samples every "
        f"{SAMPLE_PERIOD_S:.0f} s.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| duration | {r.minutes:g} min |",
        f"| capacity / offered (half) | {r.capacity_rps:.0f} / {r.offered_rps:.0f} req/s |",
        f"| answered / non-200 / socket errors | {r.answered} / {r.non_200} / {r.socket_errors} |",
        f"| latency | {latency} ms |",
        f"| resident memory first / last | {r.rss_first_mb:.1f} / {r.rss_last_mb:.1f} MB |",
        f"| RSS slope after {r.rss_fit_from_s:.0f} s (least squares) | "
        f"{r.rss_slope_mb_per_min:+.3f} MB/min, {r.rss_projected_growth_mb:+.2f} MB over the run |",
        f"| open fds first / last / max | {r.fds_first} / {r.fds_last} / {r.fds_max} |",
        f"| threads first / last / max | {r.threads_first} / {r.threads_last} / "
        f"{r.threads_max} |",
        "",
        "| target | met |",
        "|---|---|",
        *(f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in r.verdicts.items()),
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the server stops too
    WORK.mkdir(parents=True, exist_ok=True)
    meta = machine(("python -m benchmarks.soak " + " ".join(argv or sys.argv[1:])).strip())
    report = run(args.minutes, WORK)
    print(write_report(args.out, "soak", {"meta": meta, **asdict(report)}, render))


if __name__ == "__main__":
    main()
