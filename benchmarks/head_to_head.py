"""Ours against a peer's best setting, measured again in alternating rounds.

The sweep finds a peer's best setting as the fastest of up to 60 short points, so its figure is
the luckiest draw of a machine whose speed drifts by 15 % within minutes (a winner's curse), and
the figure of ours it is divided into was taken at another time, often half an hour apart. The
two figures of a ratio should come from the same minutes and neither should be chosen by its
own noise. So, after the sweep has chosen the setting:

- both servers run side by side on the server core, ours and the peer at its chosen setting and
  protocol, each warmed up;
- the load alternates between them: ours, the peer, ours, the peer, ..., ours, so that every
  point of the peer sits between two of ours taken just before and just after it;
- a round's ratio is the mean of those two points of ours over the peer's point, and the report
  judges the median over the rounds and shows their spread.

The server not under load is idle; its CPU time over each point is recorded, to show that it
took nothing from the one measured.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.config import BenchConfig
from benchmarks.harness.servers import Launch, ServerProcess, serve
from benchmarks.measure import FAILURES, Target, grpc_answer_bytes, load, measure_point
from benchmarks.procstat import cpu_seconds

log = logging.getLogger(__name__)


def _point_beside(
    measured: ServerProcess, idle: ServerProcess, target: Target, config: BenchConfig
) -> dict[str, Any]:
    """One closed-loop point of `measured`, with the CPU `idle` used meanwhile (in cores)."""
    before = cpu_seconds(idle.pid)
    point = measure_point(
        measured, target, config.head_to_head_concurrency, config.duration_s, config.client_core
    )
    point["idle_server_cpu"] = (cpu_seconds(idle.pid) - before) / point["duration_s"]
    return point


def summarize(ours: list[dict[str, Any]], peer: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratio of each round (the peer's point against the mean of ours before and after it)
    and their median, min and max; `ours` has one point more than `peer`."""
    ratios = [
        (before["throughput"] + after["throughput"]) / 2 / point["throughput"]
        for before, point, after in zip(ours, peer, ours[1:], strict=False)
        if point["throughput"] > 0
    ]
    return {
        "ratios": ratios,
        "ratio": statistics.median(ratios) if ratios else None,
        "ours_median": statistics.median(p["throughput"] for p in ours),
        "peer_median": statistics.median(p["throughput"] for p in peer),
        "errors": sum(p["errors"] for p in ours),
        "peer_errors": sum(p["errors"] for p in peer),
    }


def head_to_head(
    config: BenchConfig,
    ours: tuple[Launch, Target],
    peer: tuple[Launch, Target],
    logs: Path,
    name: str,
) -> dict[str, Any]:
    """`config.head_to_head_rounds` alternating rounds at `config.head_to_head_concurrency`.
    Returns {"ours": points, "peer": points, **summarize(...)}, or {"error": ...} when a server
    failed to start or a load run failed."""
    (ours_launch, ours_target), (peer_launch, peer_target) = ours, peer
    core = config.server_core
    try:
        with (
            serve(ours_launch, core=core, log_path=logs / f"{name}-ours.log") as our_server,
            serve(peer_launch, core=core, log_path=logs / f"{name}-peer.log") as peer_server,
        ):
            if peer_target.grpc:
                peer_target = replace(peer_target, answer_bytes=grpc_answer_bytes(peer_target))
            for server, target in ((our_server, ours_target), (peer_server, peer_target)):
                load(server, target, config.head_to_head_concurrency, config.warmup_s,
                     config.client_core)  # fmt: skip
            our_points = [_point_beside(our_server, peer_server, ours_target, config)]
            peer_points = []
            for _ in range(config.head_to_head_rounds):
                peer_points.append(_point_beside(peer_server, our_server, peer_target, config))
                our_points.append(_point_beside(our_server, peer_server, ours_target, config))
                log.info(
                    "%s round %d: ours %.0f, %.0f req/s; peer %.0f req/s",
                    name,
                    len(peer_points),
                    our_points[-2]["throughput"],
                    our_points[-1]["throughput"],
                    peer_points[-1]["throughput"],
                )
    except FAILURES as exc:
        log.error("%s head to head failed: %s", name, exc)
        return {"error": str(exc)[-2000:]}
    return {"ours": our_points, "peer": peer_points, **summarize(our_points, peer_points)}
