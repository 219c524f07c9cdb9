"""Served throughput as a fraction of raw ONNX Runtime, measured in interleaved, bracketed rounds.

On a noisy machine (a VM whose speed drifts ±15 % within minutes, and sometimes 40 %) one raw
sweep followed by the servers compares different machines. Here every round does:

1. a raw sweep over batch sizes, which only *chooses* the best batch;
2. raw ONNX Runtime at that batch, then each contender, each followed by raw at that batch again,
   so every served point is bracketed by raw runs just before and after it.

A contender's ratio is its throughput over the mean of its two brackets. The sweep's own best
figure is not the denominator: it is the maximum of several noisy draws on a flat curve, so it
sits in the upper tail of the noise and would understate every ratio (a winner's curse). The
report still gives the ratio against it, for comparison with earlier reports.

    python -m benchmarks.ratio [--models cnn,resnet] [--contenders binary,floor] [--rounds 5]

Writes benchmarks/results/cpu/ratio.md and ratio.json (--out to change).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.bodies import write_requests
from benchmarks.config import RESULTS_DIR, BenchConfig
from benchmarks.contenders import CONTENDERS
from benchmarks.measure import Target, run_contender, run_raw
from benchmarks.reporting import machine, machine_lines, write_report
from benchmarks.workload import ensure_store, load_workload

log = logging.getLogger("benchmarks.ratio")

CONCURRENCY = 32
# The targets: served binary at c=32 over raw ONNX Runtime at its best batch.
TARGETS = {"cnn": 0.80, "resnet": 0.92}


def measure_round(config: BenchConfig, model: str, contenders: tuple[str, ...]) -> dict[str, Any]:
    sweep = max(run_raw(config, model), key=lambda row: row["throughput"])
    at_best = replace(config, raw_batches=(sweep["batch"],))

    def raw_now() -> float:
        return float(run_raw(at_best, model)[0]["throughput"])

    workload = load_workload(config.store, model, config.work_dir / "cache")
    binary = Target(
        "binary", workload.path, write_requests(workload, "binary", config.work_dir / "requests")
    )
    brackets = [raw_now()]
    served = {}
    for key in contenders:
        entry = run_contender(CONTENDERS[key], config, workload, binary)
        if entry.get("error") or not entry["points"]:
            raise RuntimeError(f"{model} {key} failed: {entry.get('error')}")
        served[key] = entry["points"][0]["throughput"]
        brackets.append(raw_now())
    return {
        "raw_batch": sweep["batch"],
        "sweep_best": sweep["throughput"],
        "brackets": brackets,
        "served": served,
    }


def bracketed_ratios(measured: dict[str, Any]) -> dict[str, float]:
    """Each contender's throughput over the mean raw throughput just before and just after it."""
    brackets = measured["brackets"]
    return {
        key: throughput / ((brackets[i] + brackets[i + 1]) / 2)
        for i, (key, throughput) in enumerate(measured["served"].items())
    }


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# Served throughput over raw ONNX Runtime, interleaved and bracketed rounds",
        "",
        *machine_lines(meta),
        f"- Server and raw ONNX Runtime pinned to core {meta['server_core']}, wrk to core "
        f"{meta['client_core']}; c={CONCURRENCY}, binary tensors, {meta['duration_s']:g} s per "
        f"point, raw {meta['raw_seconds']:g} s per batch.",
        "- Each round: a raw sweep chooses the best batch; then raw at that batch, and each "
        "contender followed by raw at that batch again. A ratio divides a contender's throughput "
        "by the mean of the raw runs just before and after it (its brackets).",
        "- The sweep's best figure is the maximum of several noisy draws, so it over-states raw; "
        "the ratio against it is given last, for comparison with earlier reports.",
        "- `floor` is benchmarks/contenders/floor_uvloop.py: a batching server that checks and "
        "counts nothing, the least a Python server on uvloop pays per request.",
    ]
    for model, rounds in results["models"].items():
        if not rounds:
            continue
        contenders = list(rounds[0]["served"])
        lines += ["", f"## `{model}`", ""]
        lines += [
            "| round | batch | sweep best | "
            + " | ".join(f"{c} req/s | raw around it | {c} ratio" for c in contenders)
            + " |",
            "| ---: | ---: | ---: | " + " | ".join("---: | ---: | ---:" for _ in contenders) + " |",
        ]
        for i, r in enumerate(rounds, 1):
            bracketed = bracketed_ratios(r)
            cells = [
                f"{r['served'][c]:,.0f} | {r['brackets'][j]:,.0f}–{r['brackets'][j + 1]:,.0f} "
                f"| {bracketed[c]:.2f} ×"
                for j, c in enumerate(contenders)
            ]
            lines.append(
                f"| {i} | {r['raw_batch']} | {r['sweep_best']:,.0f} | " + " | ".join(cells) + " |"
            )
        lines.append("")
        medians: dict[str, float] = {}
        for c in contenders:
            ratios = [bracketed_ratios(r)[c] for r in rounds]
            against_sweep = [r["served"][c] / r["sweep_best"] for r in rounds]
            medians[c] = statistics.median(ratios)
            lines.append(
                f"- {c}: median {medians[c]:.2f} × raw (min {min(ratios):.2f}, "
                f"max {max(ratios):.2f}, {len(ratios)} rounds); against the sweep's best: "
                f"{statistics.median(against_sweep):.2f} ×"
            )
        if model in TARGETS and "binary" in contenders:
            status = "met" if medians["binary"] >= TARGETS[model] else "missed"
            lines += [
                "",
                f"Target ≥ {TARGETS[model]:.2f} × raw: median {medians['binary']:.2f} × "
                f"— **{status}**.",
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
    # The ratios are of binary requests (the targets'): contenders that take them.
    binary = [key for key, c in CONTENDERS.items() if c.protocol == "binary"]
    unknown = set(contenders) - set(binary)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}; choose from {', '.join(binary)}")
    config = replace(
        BenchConfig(),
        models=models,
        concurrency=(CONCURRENCY,),
        duration_s=args.duration_s,
        raw_seconds=args.raw_seconds,
        raw_batches=(4, 8, 16, 32, 64),
    )
    ensure_store(config.store, models)
    command = " ".join(["python -m benchmarks.ratio", *(argv or sys.argv[1:])])
    results: dict[str, Any] = {
        "meta": {
            **machine(command),
            "server_core": config.server_core,
            "client_core": config.client_core,
            "duration_s": config.duration_s,
            "raw_seconds": config.raw_seconds,
        },
        "models": {m: [] for m in models},
    }
    report = ""
    for i in range(args.rounds):
        for model in models:
            measured = measure_round(config, model, contenders)
            log.info("round %d %s: %s", i + 1, model, measured)
            results["models"][model].append(measured)
            report = write_report(args.out, "ratio", results, render)
    print(report)


if __name__ == "__main__":
    main()
