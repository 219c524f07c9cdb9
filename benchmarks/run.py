"""`make bench` / `python -m benchmarks.run [--quick] [--models cnn,...] [--contenders ...]`.

Builds the demo store if models are missing, then for each model measures raw ONNX Runtime and
every contender under the same wrk load, and writes results.json, report.md and plots to
--out (benchmarks/results/cpu by default; the quick run writes to benchmarks/.work/quick).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnxruntime as ort

from benchmarks.config import ALL_CONTENDERS, BenchConfig, quick
from benchmarks.measure import run_model
from benchmarks.plots import write_plots
from benchmarks.report import render
from benchmarks.wrk import INSTALL_HINT, WrkError, wrk_binary
from model_store import open_store

log = logging.getLogger("benchmarks")


def ensure_store(store: Path, models: tuple[str, ...]) -> None:
    """Trains and publishes the demo models when one of `models` is missing (a few minutes)."""
    present = set(open_store(str(store)).list_models()) if store.exists() else set()
    missing = [m for m in models if m not in present]
    if missing:
        log.info("models %s missing from %s: running `python -m training demo`", missing, store)
        subprocess.run(
            [sys.executable, "-m", "training", "demo", "--store", str(store)], check=True
        )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _wrk_version() -> str:
    done = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].split(" [")[0]


def run(config: BenchConfig, command: str) -> dict[str, Any]:
    config.out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "server_core": config.server_core,
            "client_core": config.client_core,
            "duration_s": config.duration_s,
            "warmup_s": config.warmup_s,
            "raw_seconds": config.raw_seconds,
            "onnxruntime": ort.__version__,
            "wrk": _wrk_version(),
            "python": platform.python_version(),
            "command": command,
            "load_before": os.getloadavg(),
        },
        "models": {},
    }
    for model in config.models:
        results["models"][model] = run_model(config, model)
        results["meta"]["load_after"] = os.getloadavg()
        write_outputs(results, config.out_dir)  # after each model: a crash keeps what was done
    return results


def write_outputs(results: dict[str, Any], out_dir: Path) -> None:
    results["meta"].setdefault("load_after", os.getloadavg())
    write_plots(results, out_dir)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    (out_dir / "report.md").write_text(render(results))


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_config(argv: list[str] | None) -> BenchConfig:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: cnn only, c=32, a few seconds per point"
    )
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
    parser.add_argument("--store", type=Path, help="model store (default benchmarks/.store)")
    parser.add_argument("--out", type=Path, dest="out_dir", help="results directory")
    parser.add_argument("--server-core", type=int)
    parser.add_argument("--client-core", type=int)
    args = vars(parser.parse_args(argv))
    config = quick(BenchConfig()) if args.pop("quick") else BenchConfig()
    return replace(config, **{k: v for k, v in args.items() if v is not None})


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        wrk_binary()
    except WrkError:
        sys.exit(INSTALL_HINT)
    config = parse_config(argv)
    ensure_store(config.store, config.models)
    command = "python -m benchmarks.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    results = run(config, command.strip())
    print(render(results))
    print(f"results in {config.out_dir}")


if __name__ == "__main__":
    main()
