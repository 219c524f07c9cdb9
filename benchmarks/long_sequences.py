"""What one long sequence costs a served transformer, and what `max_length` changes.

    python -m benchmarks.long_sequences [--store benchmarks/.store] [--lengths 29,1024,4096,8192]

The demo transformer is published into a scratch store twice over: first with its ragged input
unbounded (as sequence models were published before `max_length` existed), then with the
`max_length` training now publishes. For each length, one request of that many steps is sent
and, 50 ms later, one of 29 steps (JapaneseVowels' longest) by another client; the table gives
both latencies and the server's peak RSS so far (VmHWM). Self-attention is quadratic in the
length, so without a bound one small request holds the model, and the clients behind it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.harness.servers import ServerProcess, running_server
from benchmarks.reporting import machine, machine_lines, table, write_report
from model_store import add_onnx, open_store

SHORT = 29


def _body(steps: int) -> tuple[bytes, int]:
    x = np.zeros((1, steps, 12), np.float32)
    lengths = np.array([steps], np.int64)
    header = json.dumps({"inputs": [
        {"name": "x", "shape": [1, steps, 12], "datatype": "FP32",
         "parameters": {"binary_data_size": x.nbytes}},
        {"name": "lengths", "shape": [1], "datatype": "INT64",
         "parameters": {"binary_data_size": lengths.nbytes}},
    ]}).encode()  # fmt: skip
    return header + x.tobytes() + lengths.tobytes(), len(header)


def _infer(server: ServerProcess, steps: int) -> tuple[int, float]:
    body, header_length = _body(steps)
    started = time.perf_counter()
    response = httpx.post(
        f"{server.url}/v2/models/transformer/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(header_length)},
        timeout=600,
    )
    return response.status_code, time.perf_counter() - started


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(server: ServerProcess, lengths: list[int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for steps in lengths:
        behind: dict[str, tuple[int, float]] = {}

        def short_client(behind: dict[str, tuple[int, float]] = behind) -> None:
            time.sleep(0.05)
            behind["short"] = _infer(server, SHORT)

        thread = threading.Thread(target=short_client)
        thread.start()
        status, seconds = _infer(server, steps)
        thread.join()
        short_status, short_seconds = behind["short"]
        rows.append({
            "steps": steps, "status": status, "seconds": seconds,
            "short_status": short_status, "short_seconds": short_seconds,
            "peak_rss_mb": _peak_rss_mb(server.pid),
        })  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=Path("benchmarks/.store"))
    parser.add_argument("--lengths", default="29,1024,4096,8192")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reliability"))
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    command = f"python -m benchmarks.long_sequences --lengths {args.lengths}"
    runs: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        store_dir = Path(scratch) / "store"
        store = open_store(str(store_dir))
        source = open_store(str(args.store))
        demo = source.resolve("transformer")
        config = source.config("transformer")
        onnx_path = source.materialize("transformer", demo, Path(scratch) / "cache") / "model.onnx"
        unbounded = config.ragged_inputs[0].model_copy(update={"max_length": None})
        bounded = unbounded.model_copy(update={"max_length": args.max_length})
        for label, ragged in (("unbounded", unbounded), (f"max_length {args.max_length}", bounded)):
            # A version serves the config published with it: one version per setting.
            version_config = config.model_copy(update={"ragged_inputs": (ragged,)})
            add_onnx(store, "transformer", onnx_path, config=version_config)
            env = {"INDUCTIVE_MODELS": "transformer", "INDUCTIVE_MAX_BODY_BYTES": str(64 << 20)}
            with running_server(store_dir, Path(scratch) / label.replace(" ", "-"), env) as server:
                runs[label] = measure(server, lengths)
    data = {"meta": machine(command), "short_steps": SHORT, "runs": runs}
    print(write_report(args.out, "long-sequences", data, render))


def render(data: dict[str, Any]) -> str:
    rows = [
        [label, f"{r['steps']:,}", r["status"], f"{r['seconds']:.3f}",
         f"{r['short_status']} in {r['short_seconds']:.3f} s", f"{r['peak_rss_mb']:,.0f} MB"]
        for label, measured in data["runs"].items()
        for r in measured
    ]  # fmt: skip
    lines = [
        "# One long sequence against the demo transformer",
        "",
        *machine_lines(data["meta"]),
        "- One server (CPU, one intra-op thread), the demo transformer (2 layers, 4 heads, "
        f"d_model 64). Each row: one request of that many steps, and one of "
        f"{data['short_steps']} steps sent 50 ms after it by another client.",
        "",
        *table(
            [
                "ragged input",
                "steps",
                "status",
                "seconds",
                f"the {data['short_steps']}-step request behind it",
                "peak RSS so far",
            ],
            rows,
            numeric={1, 2, 3, 5},
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
