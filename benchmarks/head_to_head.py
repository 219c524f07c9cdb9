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
took nothing from the one measured, and so is the CPU time the hypervisor stole from the two
cores meanwhile.

`python -m benchmarks.run` runs this after the peers' sweep, for every peer. On its own, it
measures ours against one peer again, at the setting a committed suite run found best, and
appends the result to a record of such runs, each with raw ONNX Runtime's speed before and after
it (how fast the machine was then):

    python -m benchmarks.head_to_head [--peer mlserver] [--rounds 5]
        [--report benchmarks/results/peers/report.json]
        [--out benchmarks/results/peers/head-to-head]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.config import RESULTS_DIR, BenchConfig
from benchmarks.contenders import CONTENDERS, PEERS, launch_for
from benchmarks.harness.servers import Launch, ServerProcess, serve
from benchmarks.measure import (
    FAILURES,
    Target,
    grpc_answer_bytes,
    grpc_body,
    http_targets,
    load,
    measure_point,
    run_raw,
)
from benchmarks.procstat import cpu_seconds, steal_ms
from benchmarks.report import OURS
from benchmarks.reporting import fmt, table
from benchmarks.sweep import best_points, peer_target
from benchmarks.workload import Workload, ensure_store, load_workload

log = logging.getLogger(__name__)


def _point_beside(
    measured: ServerProcess, idle: ServerProcess, target: Target, config: BenchConfig
) -> dict[str, Any]:
    """One closed-loop point of `measured`, with the CPU `idle` used meanwhile (in cores)."""
    cores = (config.server_core, config.client_core)
    before, stolen = cpu_seconds(idle.pid), steal_ms(cores)
    point = measure_point(
        measured, target, config.head_to_head_concurrency, config.duration_s, config.client_core
    )
    point["idle_server_cpu"] = (cpu_seconds(idle.pid) - before) / point["duration_s"]
    point["steal_ms"] = steal_ms(cores) - stolen
    return point


def summarize(ours: list[dict[str, Any]], peer: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratio of each round (the mean of ours before and after the peer's point, over that
    point), their median, each side's median throughput and errors; `ours` has one point more
    than `peer`."""
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
    (ours_launch, ours_target), (peer_launch, theirs) = ours, peer
    core = config.server_core
    try:
        with (
            serve(ours_launch, core=core, log_path=logs / f"{name}-ours.log") as our_server,
            serve(peer_launch, core=core, log_path=logs / f"{name}-peer.log") as peer_server,
        ):
            if theirs.grpc:
                theirs = replace(theirs, answer_bytes=grpc_answer_bytes(theirs))
            for server, target in ((our_server, ours_target), (peer_server, theirs)):
                load(server, target, config.head_to_head_concurrency, config.warmup_s,
                     config.client_core)  # fmt: skip
            our_points = [_point_beside(our_server, peer_server, ours_target, config)]
            peer_points = []
            for _ in range(config.head_to_head_rounds):
                peer_points.append(_point_beside(peer_server, our_server, theirs, config))
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


def against_best(
    key: str,
    config: BenchConfig,
    workload: Workload,
    swept: dict[str, Any],
    http: dict[str, Target],
    body: Path,
) -> dict[str, Any] | None:
    """Ours (binary) against peer `key` at the setting and protocol its sweep (`swept`, as
    sweep.sweep_peer returns it) found best at the head-to-head concurrency; None when the
    sweep has no best there."""
    best = best_points(swept.get("sweep", [])).get(config.head_to_head_concurrency)
    if best is None:
        return None
    peer = PEERS[key]
    launched = peer.build(workload, best["setting"], config.work_dir / "peers")
    ours = launch_for(CONTENDERS[OURS], workload, config.store, config.work_dir)
    entry = head_to_head(
        config,
        (ours, http[OURS]),
        (launched.launch, peer_target(best["protocol"], http, body, launched.grpc_port)),
        config.work_dir / "logs",
        f"{workload.name}-{key}-head-to-head",
    )
    return {
        "label": peer.label,
        "setting": best["setting"],
        "protocol": best["protocol"],
        "concurrency": config.head_to_head_concurrency,
        **entry,
    }


# --- on its own: one peer again, recorded with the machine's speed --------------------------

RAW_BATCHES = (8, 16, 32)  # where raw ONNX Runtime is fastest for the cnn on these CPUs


def _raw_best(config: BenchConfig, model: str) -> float:
    rows = run_raw(replace(config, raw_batches=RAW_BATCHES, raw_seconds=2.0), model)
    return max(float(row["throughput"]) for row in rows)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout


def _commit() -> str:
    """The commit measured, `-dirty` when tracked files outside the results differ from it (the
    record this run appends to is itself a tracked result)."""
    head = _git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                   ":(exclude)benchmarks/results")  # fmt: skip
    return f"{head}-dirty" if changed.strip() else head


def render_record(runs: list[dict[str, Any]]) -> str:
    """The markdown record: one row per run of ours against a peer, oldest first."""
    lines = [
        "# Ours against a peer's best, side by side, run by run",
        "",
        "Each row: `python -m benchmarks.head_to_head` at the time shown. Ours (binary tensors, "
        "batching on) and the peer, at the setting and protocol the suite's sweep found best "
        "at the concurrency shown, run side by side on core 0, the load (wrk on core 1) "
        "alternating between them, 5 s a point: ours, the peer, ours, ..., ours. A round's "
        "ratio is the mean of the two points of ours around the peer's point over that point. "
        "*Raw ONNX Runtime* is its best samples/s at batch 8, 16 or 32 just before and after, "
        "in-process on the same core: how fast the machine was. *Steal*: CPU time the "
        "hypervisor took from the two cores during the points.",
        "",
    ]
    rows = []
    for run in runs:
        duel = run["duel"]
        ratios = duel.get("ratios") or []
        points = [*duel.get("ours", []), *duel.get("peer", [])]
        rows.append([
            run["started"], run["commit"], f"{duel['label']} ({duel['protocol']}, "
            + ", ".join(f"{k} {v}" for k, v in duel["setting"].items()) + ")",
            duel["concurrency"], f"{fmt(run['raw_before'])} → {fmt(run['raw_after'])}",
            fmt(sum(p.get("steal_ms", 0) for p in points)),
            fmt(duel.get("ours_median")), fmt(duel.get("peer_median")),
            ", ".join(f"{r:.2f}" for r in ratios) or duel.get("error", "")[-200:],
            f"{duel['ratio']:.2f} ×" if duel.get("ratio") else "–",
        ])  # fmt: skip
    header = ["taken (UTC)", "commit", "peer at its best", "c", "raw ONNX Runtime samples/s",
              "steal ms", "ours req/s (median)", "peer req/s (median)", "ratio per round",
              "median ratio"]  # fmt: skip
    return "\n".join([*lines, *table(header, rows, numeric=(3, 5, 6, 7, 9))])


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.head_to_head", description=__doc__)
    parser.add_argument("--peer", default="mlserver", choices=sorted(PEERS))
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--report",
        type=Path,
        default=RESULTS_DIR / "peers" / "report.json",
        help="the suite run whose sweep chose the peer's best setting",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "peers" / "head-to-head")
    args = parser.parse_args(argv)
    swept = json.loads(args.report.read_text())["models"][args.model]["peers"][args.peer]
    config = replace(BenchConfig(), head_to_head_rounds=args.rounds)
    ensure_store(config.store, (args.model,))
    workload = load_workload(config.store, args.model, config.work_dir / "cache")
    http, body = http_targets(workload, config.work_dir), grpc_body(workload, config.work_dir)
    started = time.strftime("%Y-%m-%d %H:%M")
    raw_before = _raw_best(config, args.model)
    duel = against_best(args.peer, config, workload, swept, http, body)
    if duel is None:
        raise SystemExit(f"{args.report} has no best setting of {args.peer} at c=32")
    record = args.out.with_suffix(".json")
    runs = json.loads(record.read_text()) if record.exists() else []
    runs.append({
        "started": started, "commit": _commit(), "raw_before": raw_before,
        "raw_after": _raw_best(config, args.model), "duel": duel,
    })  # fmt: skip
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(runs, indent=1) + "\n")
    markdown = render_record(runs)
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
