"""`make bench` / `python -m benchmarks.run [--quick | --short] [--models cnn,...] [...]`.

For each model, in one run on one machine (server pinned to one core, load generator to the
other): raw ONNX Runtime's batch sweep; our service, the floor and naive FastAPI under wrk at each
concurrency; each peer (MLServer, KServe, LitServe, BentoML) swept over its own knobs and
protocols (peer models only), then ours against each peer's best setting again, side by side in
alternating rounds (head_to_head.py; the peer targets are judged on these); open-loop latency
curves for ours and each peer at its best (open-loop models only); raw ONNX Runtime again.
Writes results.json, report.md and plots to --out (benchmarks/results/cpu by default; --quick
and --short write under benchmarks/.work).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnxruntime as ort

from benchmarks import latency
from benchmarks.closedloop import INSTALL_HINT, LoadError, wrk_binary
from benchmarks.config import ALL_CONTENDERS, BenchConfig, quick, short
from benchmarks.contenders import CONTENDERS, PEERS, Contender, Peer, launch_for
from benchmarks.contenders.venvs import VenvError, ensure_venv
from benchmarks.head_to_head import against_best
from benchmarks.measure import Target, grpc_body, http_targets, run_contender, run_raw
from benchmarks.plots import write_plots
from benchmarks.report import HTTP, OURS, render
from benchmarks.reporting import machine, write_report
from benchmarks.sweep import capacity, sweep_peer
from benchmarks.workload import Workload, ensure_store, load_workload

log = logging.getLogger("benchmarks")


def _wrk_version() -> str:
    done = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].split(" [")[0]


class Timer:
    """How long each part of the run took, in results["meta"]["seconds"]."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.seconds: dict[str, float] = results["meta"].setdefault("seconds", {})

    def part(self, name: str, started: float) -> None:
        self.seconds[name] = round(time.monotonic() - started, 1)


def run(config: BenchConfig, command: str) -> dict[str, Any]:
    results: dict[str, Any] = {
        "meta": {
            **machine(command),
            "server_core": config.server_core,
            "client_core": config.client_core,
            "duration_s": config.duration_s,
            "warmup_s": config.warmup_s,
            "raw_seconds": config.raw_seconds,
            "peer_grid": config.peer_grid,
            "peer_duration_s": config.peer_duration_s,
            "open_loop_s": config.open_loop_s,
            "open_loop_connections": config.open_loop_connections,
            "open_loop_retries": config.open_loop_retries,
            "slo_ms": config.slo_ms,
            "onnxruntime": ort.__version__,
            "wrk": _wrk_version(),
        },
        "models": {},
    }
    started = time.monotonic()
    timer = Timer(results)
    if config.peers and set(config.peer_models) & set(config.models):
        # Installed (or found) before any measurement, so their time shows apart.
        for key in config.peers:
            try:
                ensure_venv(key)
            except VenvError as exc:  # its sweep records the failure in the report
                log.error("%s: %s", key, exc)
        timer.part("the peers' venvs", started)
    for model in config.models:
        results["models"][model] = {}
        run_model(config, model, results, timer)
    timer.part("total", started)
    write_outputs(results, config.out_dir)
    return results


def write_outputs(results: dict[str, Any], out_dir: Path) -> str:
    write_plots(results, out_dir)
    return write_report(out_dir, "report", results, render)


def run_model(config: BenchConfig, model: str, results: dict[str, Any], timer: Timer) -> None:
    """Fills results["models"][model], writing the outputs after each part (a crash keeps what
    was done)."""
    workload = load_workload(config.store, model, config.work_dir / "cache")
    data: dict[str, Any] = results["models"][model]
    data.update(
        version=workload.version,
        samples=len(workload.samples),
        ragged=bool(workload.ragged),
        contenders={},
    )

    def done(part: str, started: float) -> None:
        timer.part(f"{model} {part}", started)
        write_outputs(results, config.out_dir)

    if "raw" in config.contenders:
        started = time.monotonic()
        data["raw"] = run_raw(config, model)
        done("raw ONNX Runtime", started)
    http = http_targets(workload, config.work_dir)
    # The gRPC frame h2load posts to ours (`ours-grpc`) and to the peers' gRPC doors.
    body = grpc_body(workload, config.work_dir)
    targets = {**http, "grpc": Target("grpc", "", [body])}
    for key in config.contenders:
        if key in CONTENDERS:
            started = time.monotonic()
            contender = CONTENDERS[key]
            data["contenders"][key] = run_contender(
                contender, config, workload, targets[contender.protocol]
            )
            done(key, started)
    if model in config.peer_models and config.peers:
        data["peers"] = {}
        for key in config.peers:
            started = time.monotonic()
            swept = data["peers"][key] = sweep_peer(PEERS[key], config, workload, http, body)
            launches = len({json.dumps(run["setting"]) for run in swept["sweep"]})
            done(f"{key} sweep ({launches} launches)", started)
        if config.head_to_head_rounds and OURS in config.contenders:
            data["head_to_head"] = {}
            for key in config.peers:
                started = time.monotonic()
                entry = against_best(key, config, workload, data["peers"][key], http, body)
                if entry is not None:
                    data["head_to_head"][key] = entry
                    done(f"{key} head to head", started)
    if model in config.open_loop_models:
        data["open_loop"] = {}
        for key in config.open_loop_contenders:
            if key in config.contenders:
                started = time.monotonic()
                curve = open_loop_entry(key, config, workload, data, http)
                if curve is not None:
                    data["open_loop"][key] = curve
                    done(f"{key} open loop", started)
    if "raw" in config.contenders and data["contenders"]:
        # Again after the servers: a VM's speed drifts within minutes, and the report judges
        # each server against the faster of the two sweeps.
        started = time.monotonic()
        data["raw_after"] = run_raw(config, model)
        done("raw ONNX Runtime again", started)


def open_loop_entry(
    key: str,
    config: BenchConfig,
    workload: Workload,
    data: dict[str, Any],
    http: dict[str, Target],
) -> dict[str, Any] | None:
    """The open-loop curve of one contender at its closed-loop capacity (a peer at the setting
    and protocol that reached it); None when it has no error-free closed-loop point."""
    if key in CONTENDERS:
        contender: Contender = CONTENDERS[key]
        points = [p for p in data["contenders"].get(key, {}).get("points", []) if p["errors"] == 0]
        if not points:
            return None
        best: dict[str, Any] = max(points, key=lambda p: p["throughput"])
        launch = launch_for(contender, workload, config.store, config.work_dir)
        label, protocol, setting = contender.label, contender.protocol, None
    else:
        peer: Peer = PEERS[key]
        found = capacity(data.get("peers", {}).get(key, {}).get("sweep", []), HTTP)
        if found is None:
            return None
        best, protocol, setting = found, found["protocol"], found["setting"]
        launch = peer.build(workload, setting, config.work_dir / "peers").launch
        label = peer.label
    entry = latency.curve(
        launch, http[protocol], best["throughput"], config, f"{workload.name} {key}"
    )
    return {
        "label": label,
        "protocol": protocol,
        "setting": setting,
        "capacity": best["throughput"],
        "capacity_concurrency": best["concurrency"],
        **entry,
    }


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_config(argv: list[str] | None) -> BenchConfig:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="the whole report in about 10 min: c=1,32, one setting per peer, 2 s per point",
    )
    mode.add_argument("--short", action="store_true", help="everything, about a second per point")
    parser.add_argument("--models", type=_csv, help="comma-separated, default all four")
    parser.add_argument(
        "--contenders",
        type=_csv,
        help=f"comma-separated from {','.join(ALL_CONTENDERS)} (default all)",
    )
    parser.add_argument("--concurrency", type=lambda s: tuple(int(c) for c in _csv(s)))
    parser.add_argument("--duration", type=float, dest="duration_s", help="seconds per point")
    parser.add_argument("--warmup", type=float, dest="warmup_s", help="seconds per server")
    parser.add_argument("--raw-seconds", type=float, dest="raw_seconds")
    parser.add_argument("--peer-models", type=_csv, help="models the peers are swept on (cnn)")
    parser.add_argument("--peer-grid", choices=("full", "quick"))
    parser.add_argument("--peer-duration", type=float, dest="peer_duration_s")
    parser.add_argument("--open-loop-models", type=_csv, help="models with open-loop curves (cnn)")
    parser.add_argument("--open-loop-seconds", type=float, dest="open_loop_s")
    parser.add_argument(
        "--open-loop-retries", type=int, help="measurements again of a point the VM stole from"
    )
    parser.add_argument("--slo-ms", type=float, dest="slo_ms")
    parser.add_argument(
        "--head-to-head-rounds",
        type=int,
        help="alternating rounds of ours against each peer's best at c=32 (0: none)",
    )
    parser.add_argument("--store", type=Path, help="model store (default benchmarks/.store)")
    parser.add_argument("--out", type=Path, dest="out_dir", help="results directory")
    parser.add_argument("--server-core", type=int)
    parser.add_argument("--client-core", type=int)
    args = vars(parser.parse_args(argv))
    config = BenchConfig()
    if args.pop("quick"):
        config = quick(config)
    if args.pop("short"):
        config = short(config)
    return replace(config, **{k: v for k, v in args.items() if v is not None})


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        wrk_binary()
    except LoadError:
        sys.exit(INSTALL_HINT)
    config = parse_config(argv)
    ensure_store(config.store, config.models)
    command = "python -m benchmarks.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    results = run(config, command.strip())
    print(render(results))
    print(f"results in {config.out_dir}")


if __name__ == "__main__":
    main()
