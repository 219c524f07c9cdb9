"""Many models under a memory budget: hit ratio, latency of hits and misses, loads, RSS.

    python -m benchmarks.many_models [--models 500] [--budget-share 0.1] [--rate 100]
        [--seconds 60] [--zipf 1.1]

Builds a store of `--models` models of mixed sizes (benchmarks/sized_models.py: ONNX files made
with onnx's helper, not trained; weights 0.25, 0.5, 1 and 2 MB in turn), starts the server with
a memory budget of `--budget-share` of what they would take all loaded (each expected at 1.5 ×
its weights + 2 MB, the server's own estimate), and offers requests at a constant rate with the
open-loop generator (benchmarks/openloop.py), each for a model drawn from a Zipf law of exponent
`--zipf` over a shuffled ranking. Meanwhile the server's RSS is sampled every 0.25 s.

A request is a hit when its model was serving when it was sent, a miss otherwise; which models
served when is read from the server's JSON log ("ready" and "unloaded" lines). Reported: hit
ratio, p50/p99 from the due time for hits and misses, loads and evictions per second, errors,
RSS against the budget over time (max, and the series), and the budget metrics. Writes
benchmarks/results/many-models/<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.bodies import http_request
from benchmarks.harness.servers import ServerProcess, running_server
from benchmarks.openloop import OpenLoop, percentiles_ms
from benchmarks.reporting import machine_summary, write_json_record
from benchmarks.sized_models import FEATURES, publish_sized

RESULTS = Path(__file__).resolve().parent / "results" / "many-models"
MB = 1 << 20
SIZES_MB = (0.25, 0.5, 1.0, 2.0)
_READY = re.compile(r"^model (\S+) v\d+ ready in")
_UNLOADED = re.compile(r"^model (\S+) v\d+ unloaded")


def build_store(store: str, count: int, scratch: Path) -> list[int]:
    """`count` models m0000…, their weights in bytes."""
    weights = []
    for i in range(count):
        size = int(SIZES_MB[i % len(SIZES_MB)] * MB)
        publish_sized(store, f"m{i:04d}", size, float(i), scratch)
        weights.append(size)
    return weights


def zipf_sequence(count: int, n: int, s: float, rng: np.random.Generator) -> np.ndarray:
    """`n` model indices, rank r drawn with probability ∝ 1 / r^s, ranks shuffled over models."""
    ranks = np.arange(1, count + 1, dtype=np.float64)
    p = ranks**-s
    p /= p.sum()
    order = rng.permutation(count)
    return order[rng.choice(count, size=n, p=p)]


def sample_rss(pid: int, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                pages = int(statm.read().split()[1])
        except OSError:
            return
        out.append((time.monotonic(), pages * 4096 / MB))
        stop.wait(0.25)


def residency(log_text: str) -> dict[str, list[tuple[float, float]]]:
    """Per model, the (from, to) wall-clock intervals it served, from the JSON log."""
    open_since: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        message = entry.get("message", "")
        when = datetime.fromisoformat(entry["ts"]).timestamp()
        if m := _READY.match(message):
            open_since[m.group(1)] = when
        elif (m := _UNLOADED.match(message)) and m.group(1) in open_since:
            spans.setdefault(m.group(1), []).append((open_since.pop(m.group(1)), when))
    for name, since in open_since.items():
        spans.setdefault(name, []).append((since, float("inf")))
    return spans


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="many-models-") as tmp:
        root = Path(tmp)
        store = str(root / "store")
        t0 = time.perf_counter()
        weights = build_store(store, args.models, root / "scratch")
        build_s = time.perf_counter() - t0
        expected_total = sum(1.5 * w + 2 * MB for w in weights)
        budget_mb = expected_total * args.budget_share / MB
        x = np.ones((1, FEATURES), np.float32)
        body = orjson.dumps(
            {"inputs": [{"name": "x", "shape": [1, FEATURES], "datatype": "FP32",
                         "data": x.ravel().tolist()}]}
        )  # fmt: skip
        total = int(args.rate * args.seconds)
        picks = zipf_sequence(args.models, total, args.zipf, rng)
        requests = [http_request(f"/v2/models/m{i:04d}/infer", body) for i in picks]
        env = {
            "INDUCTIVE_MEMORY_BUDGET_MB": f"{budget_mb:.1f}",
            "INDUCTIVE_LOG_FORMAT": "json",
            "INDUCTIVE_POLL_INTERVAL_S": str(args.poll_interval_s),
        }
        with running_server(Path(store), root, env, ready_timeout=300) as server:
            return measure(server, args, requests, picks, weights, budget_mb, build_s)


def measure(
    server: ServerProcess,
    args: argparse.Namespace,
    requests: list[bytes],
    picks: np.ndarray,
    weights: list[int],
    budget_mb: float,
    build_s: float,
) -> dict[str, Any]:
    import uvloop

    rss: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(server.pid, stop, rss), daemon=True)
    idle_rss = _rss_mb(server.pid)
    answers: list[tuple[int, int, float, float, float]] = []
    load = OpenLoop(
        "127.0.0.1", server.port, requests, rate=args.rate, connections=args.connections,
        on_answer=lambda i, status, _h, _b, due, sent, done: answers.append(
            (i, status, due, sent, done)
        ),
    )  # fmt: skip
    wall_minus_mono = time.time() - time.monotonic()
    sampler.start()
    start = uvloop.run(load.run(args.seconds))
    stop.set()
    sampler.join()
    result = load.result(start, args.seconds, 0.0, args.seconds)
    metrics = server.metrics()
    spans = residency(server.log())
    hit_lat: list[float] = []
    miss_lat: list[float] = []
    for index, status, due, sent, done in answers:
        if index < 0 or status != 200:
            continue
        name = f"m{picks[index % len(picks)]:04d}"
        when = sent + wall_minus_mono
        hit = any(a <= when < b for a, b in spans.get(name, []))
        (hit_lat if hit else miss_lat).append(done - due)
    loads = metrics.get('inductive_memory_budget_loads_total{outcome="loaded"}', 0.0)
    evictions = metrics.get("inductive_memory_budget_evictions_total", 0.0)
    peak = max((mb for _, mb in rss), default=0.0)
    return {
        "command": "python -m benchmarks.many_models " + " ".join(args.argv),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_summary(),
        "models": args.models,
        "weights_mb": {"sizes": SIZES_MB, "total": sum(weights) / MB},
        "store_build_s": build_s,
        "budget_mb": budget_mb,
        "zipf_s": args.zipf,
        "rate": args.rate,
        "seconds": args.seconds,
        "requests": len(answers),
        "errors": result.errors,
        "statuses": result.statuses,
        "hit_ratio_client": len(hit_lat) / max(len(hit_lat) + len(miss_lat), 1),
        "hit_latency_ms": percentiles_ms(np.asarray(hit_lat)),
        "miss_latency_ms": percentiles_ms(np.asarray(miss_lat)),
        "latency_ms": result.latency_ms,
        "loads": loads,
        "loads_per_s": loads / args.seconds,
        "evictions": evictions,
        "server_hit_miss": {
            k.split('"')[1]: v
            for k, v in metrics.items()
            if k.startswith("inductive_memory_budget_requests_total")
        },
        "rss_mb": {
            "idle_before_load": idle_rss,
            "max": peak,
            "over_budget_max": peak - budget_mb,
            "target_max": budget_mb + 300,
            "series": [(round(t - rss[0][0], 2), round(mb, 1)) for t, mb in rss][::4],
        },
        "budget_used_mb_at_end": metrics.get("inductive_memory_budget_used_bytes", 0.0) / MB,
        "sent_rate": result.sent_rate,
    }


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * 4096 / MB


def main(argv: list[str] | None = None) -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--budget-share", type=float, default=0.1)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--poll-interval-s", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    report = run(args)
    path = write_json_record(RESULTS, report)
    summary = {k: v for k, v in report.items() if k != "rss_mb"}
    print(json.dumps({**summary, "rss_max_mb": report["rss_mb"]["max"]}, indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
