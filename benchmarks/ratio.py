"""Served throughput as a fraction of raw ONNX Runtime, measured in interleaved rounds.

On a noisy machine (a VM whose speed drifts ±15 % within minutes) one raw sweep followed by the
servers compares different machines. Here every round measures raw ONNX Runtime and then each
contender, back to back, and the ratio is taken within the round; the report gives each round
and the median.

    python -m benchmarks.ratio [--models cnn,resnet] [--contenders binary,floor] [--rounds 5]

Writes benchmarks/results/cpu/ratio.md and ratio.json (--out to change).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.bodies import write_requests
from benchmarks.config import CONTENDERS, RESULTS_DIR, BenchConfig
from benchmarks.measure import run_contender, run_raw
from benchmarks.run import cpu_model, ensure_store
from benchmarks.workload import load_workload

log = logging.getLogger("benchmarks.ratio")

CONCURRENCY = 32
# The targets: served binary at c=32 over raw ONNX Runtime at its best batch.
TARGETS = {"cnn": 0.80, "resnet": 0.92}


def measure_round(config: BenchConfig, model: str, contenders: tuple[str, ...]) -> dict[str, Any]:
    raw = max(run_raw(config, model), key=lambda row: row["throughput"])
    workload = load_workload(config.store, model, config.work_dir / "cache")
    files = write_requests(workload, "binary", config.work_dir / "requests")
    served = {}
    for key in contenders:
        entry = run_contender(CONTENDERS[key], config, workload, files)
        if entry.get("error") or not entry["points"]:
            raise RuntimeError(f"{model} {key} failed: {entry.get('error')}")
        served[key] = entry["points"][0]["throughput"]
    return {"raw": raw["throughput"], "raw_batch": raw["batch"], "served": served}


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# Served throughput over raw ONNX Runtime, interleaved rounds",
        "",
        f"- Taken {meta['started']} on {meta['cpu']}; server and raw ONNX Runtime pinned to core "
        f"{meta['server_core']}, wrk to core {meta['client_core']}; c={CONCURRENCY}, binary "
        f"tensors, {meta['duration_s']:g} s per point, raw {meta['raw_seconds']:g} s per batch.",
        "- Each round: raw ONNX Runtime (best batch) then every contender, so each ratio compares "
        "minutes that ran on the same machine speed.",
        "- `floor` is benchmarks/contenders/floor_uvloop.py: a batching server that checks and "
        "counts nothing, the least a Python server on uvloop pays per request.",
        f"- Reproduce: `{meta['command']}`",
    ]
    for model, rounds in results["models"].items():
        if not rounds:
            continue
        contenders = list(rounds[0]["served"])
        lines += ["", f"## `{model}`", ""]
        lines += [
            "| round | raw samples/s (batch) | "
            + " | ".join(f"{c} req/s | {c} ratio" for c in contenders)
            + " |",
            "| ---: | ---: | " + " | ".join("---: | ---:" for _ in contenders) + " |",
        ]
        for i, r in enumerate(rounds, 1):
            cells = [
                f"{r['served'][c]:,.0f} | {r['served'][c] / r['raw']:.2f} ×" for c in contenders
            ]
            lines.append(
                f"| {i} | {r['raw']:,.0f} ({r['raw_batch']}) | " + " | ".join(cells) + " |"
            )
        lines.append("")
        for c in contenders:
            ratios = [r["served"][c] / r["raw"] for r in rounds]
            lines.append(
                f"- {c}: median {statistics.median(ratios):.2f} × raw "
                f"(min {min(ratios):.2f}, max {max(ratios):.2f}, {len(ratios)} rounds)"
            )
        if model in TARGETS and "binary" in contenders:
            median = statistics.median(r["served"]["binary"] / r["raw"] for r in rounds)
            status = "met" if median >= TARGETS[model] else "missed"
            lines += [
                "",
                f"Target ≥ {TARGETS[model]:.2f} × raw: median {median:.2f} × — **{status}**.",
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ratio", description=__doc__)
    parser.add_argument("--models", default="cnn,resnet")
    parser.add_argument("--contenders", default="binary,floor")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0, dest="duration_s")
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    models = tuple(args.models.split(","))
    contenders = tuple(args.contenders.split(","))
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}; choose from {', '.join(CONTENDERS)}")
    config = replace(
        BenchConfig(),
        models=models,
        concurrency=(CONCURRENCY,),
        duration_s=args.duration_s,
        raw_seconds=args.raw_seconds,
        raw_batches=(4, 8, 16, 32, 64),
    )
    ensure_store(config.store, models)
    results: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu_model(),
            "server_core": config.server_core,
            "client_core": config.client_core,
            "duration_s": config.duration_s,
            "raw_seconds": config.raw_seconds,
            "command": " ".join(["python -m benchmarks.ratio", *(argv or sys.argv[1:])]),
        },
        "models": {m: [] for m in models},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.rounds):
        for model in models:
            measured = measure_round(config, model, contenders)
            log.info("round %d %s: %s", i + 1, model, measured)
            results["models"][model].append(measured)
            (args.out / "ratio.json").write_text(json.dumps(results, indent=1))
            (args.out / "ratio.md").write_text(render(results))
    print((args.out / "ratio.md").read_text())


if __name__ == "__main__":
    main()
