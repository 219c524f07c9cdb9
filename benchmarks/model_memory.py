"""Resident memory per loaded model and throughput, for ONNX Runtime's memory options.

    python -m benchmarks.model_memory [--copies 20] [--families cnn,resnet] [--seconds 2]

For each demo family (untrained weights: memory and speed do not depend on what they learnt),
exported once with training's exporter, and each option set the server can run with:

- RSS per model: a fresh process opens `copies` sessions of the file with the server's own
  session options (service/runtime/session.py, one intra-op thread), warms each at batch 1 and
  64 as a loaded version is, and reports (RSS after − RSS before) / copies, beside the weights.
- the allocator tuned as the server tunes it without the arena (runtime/memory.py
  `keep_batch_buffers`), in every process, unless --plain-malloc.
- throughput: one process holds one session per option set and runs them in alternating rounds
  at batch 1 and batch 64 (samples per CPU second of the computing thread, the median of the
  rounds), so that a shared, busy machine disturbs every option set alike.

With `--server-trees BEFORE,AFTER` (checkouts of the service, e.g. `git archive` of the commit
before into /tmp/before, and `.`), the figure the issue started from, per tree: the server
(`python -m service` from that tree, CPU, one intra-op thread) on a store of `--server-copies`
copies of the cnn, then of one copy; its RSS once ready (every version warmed up) and after one
request per model at batch 64 and batch 1 (the most over the next 2 s): (RSS with N − RSS with
1) / (N − 1) per model, and the time to ready.

Writes benchmarks/results/model-memory/<UTC date>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.reporting import machine_summary, write_json_record

RESULTS = Path(__file__).resolve().parent / "results" / "model-memory"
# Option sets: (name, INDUCTIVE_CPU_MEM_ARENA, INDUCTIVE_MEM_PATTERN). "arena" was the only
# behaviour before these settings existed (ONNX Runtime's defaults).
OPTION_SETS = (("arena+pattern", True, True), ("no-arena+pattern", False, True),
               ("no-arena,no-pattern", False, False))  # fmt: skip
BATCHES = (1, 64)
MB = 1 << 20


def export_family(family: str, directory: Path) -> Path:
    from training.data import Split
    from training.export import export_onnx
    from training.models.registry import create_model

    model = create_model(family)
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    return export_onnx(model, Split(x, np.zeros(2, np.int64)), directory / family)


def _session(path: Path, arena: bool, pattern: bool):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    from service.runtime.session import session_options
    from service.settings import Settings

    settings = Settings(intra_op_threads=1, cpu_mem_arena=arena, mem_pattern=pattern)
    return ort.InferenceSession(
        str(path), session_options(settings), providers=["CPUExecutionProvider"]
    )


def _inputs(batch: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(batch).random((batch, 1, 28, 28), dtype=np.float32)}


def rss_child(path: Path, copies: int, arena: bool, pattern: bool) -> dict[str, float]:
    """In a fresh process: MB of RSS each loaded, warmed copy adds."""
    from service.runtime.memory import release_free_memory, rss_bytes

    _session(path, arena, pattern)  # libraries and their one-time allocations, not counted
    release_free_memory()
    before = rss_bytes()
    sessions = []
    for _ in range(copies):
        session = _session(path, arena, pattern)
        for batch in sorted(BATCHES, reverse=True):
            session.run(None, _inputs(batch))
        sessions.append(session)
    release_free_memory()
    return {"rss_per_model_mb": (rss_bytes() - before) / copies / MB}


def throughput(path: Path, seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    """Samples per CPU second of the running thread (one intra-op thread: ONNX Runtime computes
    on the caller's thread), the median of the rounds: on a shared machine wall-clock rates
    follow the other jobs far more than the options, CPU time per sample much less."""
    sessions = {name: _session(path, a, p) for name, a, p in OPTION_SETS}
    for session in sessions.values():
        for batch in BATCHES:
            session.run(None, _inputs(batch))
    rates: dict[str, dict[int, list[float]]] = {n: {b: [] for b in BATCHES} for n in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            for batch in BATCHES:
                inputs = _inputs(batch)
                runs, start, cpu = 0, time.perf_counter(), time.thread_time()
                while time.perf_counter() - start < seconds / rounds:
                    session.run(None, inputs)
                    runs += 1
                rates[name][batch].append(runs * batch / (time.thread_time() - cpu))
    return {
        name: {f"batch{b}_samples_per_cpu_s": statistics.median(r) for b, r in by_batch.items()}
        for name, by_batch in rates.items()
    }


def server_rss(tree: Path, model: Path, copies: int, scratch: Path) -> dict[str, float]:
    """RSS per loaded model of the server of `tree`, with `copies` of `model` against one."""
    import urllib.request

    from benchmarks.harness.servers import Launch, free_port, serve
    from model_store import add_onnx, open_store
    from model_store.schema import BatchingConfig, ModelConfig

    config = ModelConfig(batching=BatchingConfig(max_batch_size=64))
    figures: dict[str, float] = {}
    for count in (1, copies):
        store = scratch / f"server-store-{tree.name}-{count}"
        opened = open_store(str(store))
        for i in range(count):
            add_onnx(opened, f"cnn{i:03d}", model, config=config)
        port = free_port()
        argv = [sys.executable, "-c", "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
                "runpy.run_module('service', run_name='__main__')", str(tree),
                "--store", str(store), "--port", str(port), "--providers", "cpu",
                "--intra-op-threads", "1", "--grpc-port", "off",
                "--log-level", "warning"]  # fmt: skip
        started = time.perf_counter()
        log = scratch / f"server-{tree.name}-{count}.log"
        with serve(Launch(argv, port), log_path=log) as server:
            figures[f"ready_s_{count}"] = time.perf_counter() - started
            figures[f"rss_ready_mb_{count}"] = _rss_mb(server.pid)
            for i in range(count):
                for batch in BATCHES[::-1]:
                    tensor = {"name": "x", "shape": [batch, 1, 28, 28], "datatype": "FP32",
                              "data": [0.5] * (batch * 784)}  # fmt: skip
                    body = json.dumps({"inputs": [tensor]})
                    request = urllib.request.Request(
                        f"{server.url}/v2/models/cnn{i:03d}/infer", data=body.encode()
                    )
                    with urllib.request.urlopen(request, timeout=60) as response:
                        response.read()
            # The most over the next 2 s: the server trims free memory once a second.
            samples = []
            for _ in range(9):
                samples.append(_rss_mb(server.pid))
                time.sleep(0.25)
            figures[f"rss_served_mb_{count}"] = max(samples)
    for when in ("ready", "served"):
        many, one = figures[f"rss_{when}_mb_{copies}"], figures[f"rss_{when}_mb_1"]
        figures[f"rss_per_model_{when}_mb"] = (many - one) / (copies - 1)
    return figures


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * 4096 / MB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="cnn,resnet")
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0, help="per option set and batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--plain-malloc", action="store_true", help="glibc's defaults")
    parser.add_argument("--server-trees", help="BEFORE,AFTER: checkouts to measure as servers")
    parser.add_argument("--server-copies", type=int, default=40)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.plain_malloc:
        from service.runtime.memory import keep_batch_buffers

        keep_batch_buffers()
    if args.child:
        path, copies, arena, pattern = args.child
        figures = rss_child(Path(path), int(copies), arena == "1", pattern == "1")
        print(json.dumps(figures))
        return
    report: dict[str, object] = {
        "command": "python -m benchmarks.model_memory " + " ".join(sys.argv[1:]),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_summary(),
        "copies": args.copies,
        "allocator": "glibc defaults" if args.plain_malloc else "keep_batch_buffers (as served)",
        "families": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        for family in args.families.split(","):
            path = export_family(family, Path(scratch))
            weights = sum(f.stat().st_size for f in path.parent.iterdir()) / MB
            rows: dict[str, dict[str, float]] = {}
            for name, arena, pattern in OPTION_SETS:
                child = [sys.executable, "-m", "benchmarks.model_memory", "--child", str(path),
                         str(args.copies), str(int(arena)), str(int(pattern)),
                         *(["--plain-malloc"] if args.plain_malloc else [])]  # fmt: skip
                out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
                rows[name] = json.loads(out.strip().splitlines()[-1])
            for name, figures in throughput(path, args.seconds, args.rounds).items():
                rows[name].update(figures)
            for figures in rows.values():
                figures["target_mb"] = 1.5 * weights + 2
            if args.server_trees and family == "cnn":
                servers = {}
                for tree in args.server_trees.split(","):
                    servers[tree] = server_rss(
                        Path(tree).resolve(), path, args.server_copies, Path(scratch)
                    )
                    print(f"  server {tree}: {json.dumps(servers[tree])}")
                report["servers"] = {"copies": args.server_copies, "trees": servers}
            report["families"][family] = {"weights_mb": weights, "options": rows}  # type: ignore[index]
            print(f"{family}: weights {weights:.2f} MB, target ≤ {1.5 * weights + 2:.2f} MB/model")
            for name, figures in rows.items():
                print(f"  {name:22} {figures['rss_per_model_mb']:7.2f} MB/model  "
                      f"b1 {figures['batch1_samples_per_cpu_s']:9.0f}/cpu-s  "
                      f"b64 {figures['batch64_samples_per_cpu_s']:9.0f}/cpu-s")  # fmt: skip
    out_path = write_json_record(RESULTS, report)
    print(f"written {out_path}")


if __name__ == "__main__":
    main()
