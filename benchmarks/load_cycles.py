"""Does unloading give memory back? 1,000 load/evict cycles under a memory budget.

    python -m benchmarks.load_cycles [--cycles 1000] [--weights-mb 4]

1. Server: three models of `--weights-mb` of weights (benchmarks/sized_models.py) and a budget
   that holds two of them; requests go round-robin over the three, so that every request finds
   its model unloaded, loads it and evicts another (LRU against a cycle: always a miss). The
   server's RSS is sampled after every request; reported with the budget, the loads and the
   evictions its metrics count, and any failed request.
2. In-process, the allocator alone: the same cycles with ONNX Runtime sessions opened, warmed
   and released in this process, with and without `malloc_trim` after each release
   (service/runtime/memory.py), RSS after each: how much freed memory glibc keeps, and what the
   trim gives back.

Writes benchmarks/results/load-cycles/<UTC time>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.harness.servers import running_server
from benchmarks.reporting import machine_summary, write_json_record
from benchmarks.sized_models import FEATURES, publish_sized, sized_model

RESULTS = Path(__file__).resolve().parent / "results" / "load-cycles"
MB = 1 << 20


def _rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * 4096 / MB


def server_cycles(cycles: int, weights_mb: float, root: Path) -> dict[str, Any]:
    store = str(root / "store")
    for i in range(3):
        publish_sized(store, f"c{i}", int(weights_mb * MB), float(i), root / "scratch")
    # One loaded model (charged about its weights, as measured) and the next one's estimate
    # (1.5 × weights + 2 MB) fit; two loaded and the estimate do not: every load evicts.
    budget_mb = 3 * weights_mb + 2
    env = {"INDUCTIVE_MEMORY_BUDGET_MB": str(budget_mb)}
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1, FEATURES], "datatype": "FP32",
                     "data": [1.0] * FEATURES}]}
    )  # fmt: skip
    rss: list[float] = []
    failures: list[str] = []
    with running_server(Path(store), root, env) as server:
        idle = _rss_mb(server.pid)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        for i in range(cycles):
            name = f"c{i % 3}"
            connection.request("POST", f"/v2/models/{name}/infer", body)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                failures.append(f"{name}: {response.status} {answer[:200]!r}")
            elif abs(orjson.loads(answer)["outputs"][0]["data"][0] - (FEATURES + i % 3)) > 1e-3:
                failures.append(f"{name}: wrong answer")
            rss.append(_rss_mb(server.pid))
        metrics = server.metrics()
    return {
        "budget_mb": budget_mb,
        "rss_idle_before_mb": idle,
        "rss_first_100_max_mb": max(rss[:100]),
        "rss_max_mb": max(rss),
        "rss_last_mb": rss[-1],
        "rss_max_minus_budget_mb": max(rss) - budget_mb,
        "target_rss_max_mb": budget_mb + 300,
        "rss_every_50": [round(v, 1) for v in rss[::50]],
        "loads": metrics.get('inductive_memory_budget_loads_total{outcome="loaded"}'),
        "evictions": metrics.get("inductive_memory_budget_evictions_total"),
        "failures": len(failures),
        "failure_examples": failures[:5],
    }


def allocator_cycles(cycles: int, weights_mb: float, root: Path, trim: bool) -> dict[str, Any]:
    import onnxruntime as ort

    from service.runtime.memory import release_free_memory
    from service.runtime.session import session_options
    from service.settings import Settings

    paths = [sized_model(root / f"a{i}.onnx", int(weights_mb * MB), float(i)) for i in range(3)]
    options = session_options(Settings(intra_op_threads=1))
    x = {"x": np.ones((8, FEATURES), np.float32)}
    loaded: list[Any] = []
    rss = []
    start = _rss_mb()
    for i in range(cycles):
        session = ort.InferenceSession(
            str(paths[i % 3]), options, providers=["CPUExecutionProvider"]
        )
        session.run(None, x)
        loaded.append(session)
        if len(loaded) > 2:  # two held at once, as the server's budget does
            loaded.pop(0)
            if trim:
                release_free_memory()
        rss.append(_rss_mb())
    return {
        "trim": trim,
        "rss_start_mb": start,
        "rss_max_mb": max(rss),
        "rss_last_mb": rss[-1],
        "rss_every_100": [round(v, 1) for v in rss[::100]],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--weights-mb", type=float, default=4.0)
    parser.add_argument("--child", choices=("trim", "keep"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="load-cycles-") as tmp:
        if args.child:  # the allocator alone, in a fresh process
            figures = allocator_cycles(
                args.cycles, args.weights_mb, Path(tmp), args.child == "trim"
            )
            print(json.dumps(figures))
            return
        import subprocess

        report: dict[str, Any] = {
            "command": "python -m benchmarks.load_cycles " + " ".join(sys.argv[1:]),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_summary(),
            "cycles": args.cycles,
            "weights_mb": args.weights_mb,
            "server": server_cycles(args.cycles, args.weights_mb, Path(tmp)),
        }
        print(json.dumps(report["server"]))
        for mode in ("keep", "trim"):
            argv_child = [sys.executable, "-m", "benchmarks.load_cycles", "--child", mode,
                          "--cycles", str(args.cycles),
                          "--weights-mb", str(args.weights_mb)]  # fmt: skip
            out = subprocess.run(argv_child, check=True, capture_output=True, text=True).stdout
            report[f"in_process_{mode}"] = json.loads(out.strip().splitlines()[-1])
            print(json.dumps(report[f"in_process_{mode}"]))
    path = write_json_record(RESULTS, report)
    print(f"written {path}")


if __name__ == "__main__":
    main()
