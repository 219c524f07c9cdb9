"""`python -m benchmarks.gpu [--provider cuda|cpu] [--dry-run] [--models resnet,transformer]`.

For each model: raw ONNX Runtime throughput per batch size, for fp32 and the fp16 variant, with
I/O binding off and on; then our service on the same device under wrk (binary protocol,
concurrency 64) with batching on/off, fp16/fp32, I/O binding on/off. Writes gpu-report.json and
gpu-report.md into --out.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnxruntime as ort

from benchmarks.closedloop import INSTALL_HINT, LoadError, wrk_binary
from benchmarks.config import DEFAULT_STORE, WORK_DIR, BenchConfig
from benchmarks.gpu.raw import sweep
from benchmarks.gpu.report import render
from benchmarks.gpu.served import CONFIGS, Placement, run_served
from benchmarks.reporting import machine, write_report
from benchmarks.workload import load_workload
from model_store import open_store

log = logging.getLogger("benchmarks.gpu")
BATCHES = (1, 8, 32, 64, 128, 256, 512, 1024)
DRY_BATCHES = (1, 8)


def _device(provider: str) -> str:
    if provider != "cuda":
        return "CPU (no GPU used)"
    done = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "CUDA device (nvidia-smi gave nothing)"


def variant_paths(store: Path, model: str, cache: Path) -> dict[str, Path]:
    """fp32 and, where published, fp16: the files raw ONNX Runtime runs."""
    opened = open_store(str(store))
    version = opened.resolve(model)
    manifest = opened.manifest(model, version)
    directory = opened.materialize(model, version, cache)
    paths = {"fp32": directory / manifest.model_file}
    for variant in manifest.variants.values():
        if variant.precision == "fp16":
            paths["fp16"] = directory / variant.file
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--provider", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="two batch sizes, seconds per point: checks the harness",
    )
    parser.add_argument("--models", default="resnet,transformer")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu"))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per served point")
    parser.add_argument("--raw-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        wrk_binary()
    except LoadError:
        sys.exit(INSTALL_HINT)
    duration, warmup = (2.0, 1.0) if args.dry_run else (args.duration, 3.0)
    raw_seconds = 0.3 if args.dry_run else args.raw_seconds
    batches = DRY_BATCHES if args.dry_run else BATCHES
    cache = WORK_DIR / "cache"
    placement = Placement.for_machine()
    results: dict[str, Any] = {
        "meta": {
            **machine("python -m benchmarks.gpu " + shlex.join(argv or sys.argv[1:])),
            "device": _device(args.provider),
            "provider": args.provider,
            "onnxruntime": ort.__version__,
            "dry_run": args.dry_run,
            "duration_s": duration,
            "raw_seconds": raw_seconds,
            "server_cores": placement.server,
            "client_cores": placement.client,
            "wrk_threads": placement.wrk_threads,
        },
        "models": {},
    }
    bench = BenchConfig(store=args.store)
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        workload = load_workload(args.store, model, cache)
        raw = {}
        for precision, path in variant_paths(args.store, model, cache).items():
            raw[precision] = sweep(workload, path, args.provider, batches, raw_seconds)
            best = max(raw[precision], key=lambda r: r["throughput"])
            log.info(
                "%s raw %s best: %.0f samples/s (%s, batch %d)",
                model,
                precision,
                best["throughput"],
                best["mode"],
                best["batch"],
            )
        served = run_served(bench, workload, args.provider, CONFIGS, duration, warmup, WORK_DIR)
        results["models"][model] = {"version": workload.version, "raw": raw, "served": served}
        report = write_report(args.out, "gpu-report", results, render)
    print(report)


if __name__ == "__main__":
    main()
