"""The peers at their best: every setting of a peer's own knobs, measured on the same model,
input, cores and load as ours; then, per concurrency, the setting a careful user would pick.

The rule (stated in the report): at each concurrency, among the points without errors, take
the highest throughput whose p99 latency is within P99_BOUND × the lowest p99 any setting of
that peer reached there. A setting that buys a little throughput with a much longer tail is not
a best; a faster one with a comparable tail is.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from benchmarks.config import BenchConfig
from benchmarks.contenders import Peer
from benchmarks.contenders.venvs import VenvError
from benchmarks.measure import Target, measure_launch
from benchmarks.workload import Workload

log = logging.getLogger(__name__)

P99_BOUND = 2.0


def _describe(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in setting.items())


def sweep_peer(
    peer: Peer,
    config: BenchConfig,
    workload: Workload,
    http: dict[str, Target],
    grpc_body: Path,
) -> dict[str, Any]:
    """Every setting of `peer` (one launch each), every protocol it speaks at every
    concurrency. Returns {"label", "sweep": [{"setting", "protocol", "points"|"error"}]},
    with "skipped" (why the peer cannot serve this model) or "error" (its venv failed)."""
    result: dict[str, Any] = {
        "label": peer.label,
        "protocols": list(peer.protocols),
        "note": peer.note,
        "sweep": [],
    }
    reason = peer.unsupported(workload)
    if reason:
        result["skipped"] = reason
        return result
    work = config.work_dir / "peers"
    work.mkdir(parents=True, exist_ok=True)
    for setting in peer.settings(bool(workload.ragged), config.peer_grid):
        try:
            launched = peer.build(workload, setting, work)
        except VenvError as exc:
            log.error("%s: %s", peer.label, exc)
            result["error"] = str(exc)[-2000:]
            return result
        targets = [
            peer_target(protocol, http, grpc_body, launched.grpc_port)
            for protocol in peer.protocols
        ]
        name = f"{workload.name} {peer.key} ({_describe(setting)})"
        entries = measure_launch(
            launched.launch,
            targets,
            concurrency=config.concurrency,
            duration_s=config.peer_duration_s,
            warmup_s=config.peer_warmup_s,
            server_core=config.server_core,
            client_core=config.client_core,
            log_path=config.work_dir
            / "logs"
            / f"{workload.name}-{peer.key}-{len(result['sweep'])}.log",
            name=name,
        )
        for protocol, entry in entries.items():
            result["sweep"].append({"setting": setting, "protocol": protocol, **entry})
    return result


def peer_target(
    protocol: str, http: dict[str, Target], grpc_body: Path, grpc_port: int | None
) -> Target:
    """What the load generator sends a peer launch over `protocol`."""
    if protocol == "grpc":
        return Target("grpc", "", [grpc_body], grpc_port=grpc_port)
    return http[protocol]


def best_points(
    sweep: list[dict[str, Any]], protocols: tuple[str, ...] | None = None
) -> dict[int, dict[str, Any]]:
    """Per concurrency, the best point of the sweep by the rule above (over `protocols`, or
    all), as {concurrency: {"setting", "protocol", "candidates", **point}}."""
    by_concurrency: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for entry in sweep:
        if protocols is not None and entry["protocol"] not in protocols:
            continue
        for point in entry.get("points", []):
            if point["errors"] == 0 and point["requests"] > 0:
                by_concurrency.setdefault(point["concurrency"], []).append((entry, point))
    best = {}
    for concurrency, candidates in sorted(by_concurrency.items()):
        lowest = min(point["latency_ms"]["p99"] for _, point in candidates)
        eligible = [(e, p) for e, p in candidates if p["latency_ms"]["p99"] <= P99_BOUND * lowest]
        entry, point = max(eligible, key=lambda pair: pair[1]["throughput"])
        best[concurrency] = {
            "setting": entry["setting"],
            "protocol": entry["protocol"],
            "candidates": len(candidates),
            **point,
        }
    return best


def capacity(sweep: list[dict[str, Any]], protocols: tuple[str, ...]) -> dict[str, Any] | None:
    """The fastest error-free point over `protocols`: the peer's measured capacity, with the
    setting and protocol that reached it (the open-loop curves run there)."""
    points = [
        {"setting": entry["setting"], "protocol": entry["protocol"], **point}
        for entry in sweep
        if entry["protocol"] in protocols
        for point in entry.get("points", [])
        if point["errors"] == 0 and point["requests"] > 0
    ]
    return max(points, key=lambda p: p["throughput"]) if points else None
