"""Latency under an open stream of requests: each contender at fractions of its own measured
capacity, then the highest rate it holds with p99 within the SLO.

For each contender (ours JSON and binary, each peer at the setting and protocol that gave its
capacity), one launch: a closed-loop warm-up, then open-loop runs (benchmarks/openloop.py, on
the load core) at 25 / 50 / 75 / 90 % of the capacity, then a bisection between the fastest rate
held within the SLO and the slowest one missed. A rate is held when every request got a 2xx
answer, the generator offered the rate in full and p99 (from each request's due time) is within
the SLO.
"""

from __future__ import annotations

import logging
from typing import Any

from benchmarks.closedloop import run_wrk
from benchmarks.config import BenchConfig
from benchmarks.harness.servers import Launch, serve
from benchmarks.measure import FAILURES, Target
from benchmarks.openloop import OpenLoopResult, run_open_loop
from benchmarks.procstat import steal_ms

log = logging.getLogger(__name__)
# When every fraction held, the search looks this far above the closed-loop capacity.
ABOVE_CAPACITY = 1.2


def within_slo(result: OpenLoopResult, slo_ms: float) -> bool:
    return result.held and result.latency_ms.get("p99", float("inf")) <= slo_ms


def slo_rate(points: list[dict[str, Any]]) -> float:
    """The highest rate among `points` held within the SLO (0: none)."""
    return max((p["rate"] for p in points if p["within_slo"]), default=0.0)


def curve(
    launch: Launch,
    target: Target,
    capacity: float,
    config: BenchConfig,
    name: str,
) -> dict[str, Any]:
    """Open-loop points for one contender; {"points": [...], "slo_rate"} or {"error"}."""
    points: list[dict[str, Any]] = []
    log_path = config.work_dir / "logs" / f"openloop-{name.replace(' ', '-')}.log"
    try:
        with serve(launch, core=config.server_core, log_path=log_path) as server:
            run_wrk(
                server.url + target.path,
                target.files,
                connections=32,
                duration_s=max(1.0, config.peer_warmup_s),
                core=config.client_core,
            )

            def measure(rate: float, fraction: float) -> bool:
                cores = (config.server_core, config.client_core)
                for attempt in range(1, config.open_loop_retries + 2):
                    stolen = steal_ms(cores)
                    result = run_open_loop(
                        server.url,
                        target.files,
                        rate=rate,
                        seconds=config.open_loop_s,
                        connections=config.open_loop_connections,
                        core=config.client_core,
                    )
                    stolen = steal_ms(cores) - stolen
                    if stolen == 0 or attempt > config.open_loop_retries:
                        break
                    log.info("%s open loop %.0f req/s: the VM stole %.0f ms, measured again",
                             name, rate, stolen)  # fmt: skip
                ok = within_slo(result, config.slo_ms)
                points.append({"fraction": fraction, **result.to_dict(), "within_slo": ok,
                               "attempts": attempt, "steal_ms": stolen})  # fmt: skip
                log.info(
                    "%s open loop %.0f req/s (%.0f %%): p50 %.2f p99 %.2f p99.9 %.2f ms, "
                    "sent %.0f/s, errors %d, client CPU %.2f%s",
                    name,
                    rate,
                    100 * fraction,
                    result.latency_ms.get("p50", float("nan")),
                    result.latency_ms.get("p99", float("nan")),
                    result.latency_ms.get("p999", float("nan")),
                    result.sent_rate,
                    result.errors,
                    result.client_cpu,
                    "" if ok else " (not held within the SLO)",
                )
                return ok

            for fraction in config.open_loop_fractions:
                measure(fraction * capacity, fraction)
            low = slo_rate(points)
            missed = [p["rate"] for p in points if not p["within_slo"] and p["rate"] > low]
            high = min(missed, default=ABOVE_CAPACITY * capacity)
            for _ in range(config.slo_steps):
                middle = (low + high) / 2
                if measure(middle, middle / capacity):
                    low = middle
                else:
                    high = middle
    except FAILURES as exc:
        log.error("%s open loop failed: %s", name, exc)
        return {"points": points, "slo_rate": slo_rate(points), "error": str(exc)[-2000:]}
    points.sort(key=lambda p: p["rate"])
    return {"points": points, "slo_rate": slo_rate(points)}
