"""Two checkouts of the service, A/B, in alternating rounds: what a change did to the CPU each
request costs.

    git worktree add /tmp/before <commit>
    python -m benchmarks.compare /tmp/before . [--model cnn] [--concurrency 32] [--rounds 3]
    python -m benchmarks.compare floor .        # the floor contender against this tree
    python -m benchmarks.compare . . --b-env INDUCTIVE_ACCESS_LOG=true   # one tree, two settings

`--a-env` / `--b-env KEY=VALUE` (repeatable) add environment variables to the first or second
server (INDUCTIVE_* settings, OTEL_* variables), so one tree can be compared with itself under
two configurations.

`--open-loop 6000,7000` adds, in each round and on the same running server after the closed-loop
run, an open-loop run (benchmarks/openloop.py, from core 1) at each rate for
`--open-loop-seconds`: latency counted from each request's due time, p50 / p99 / p99.9, the
rate the generator got sent, the server's minor page faults meanwhile (pages it mapped afresh),
and whether the rate was held (every request answered 2xx, the rate offered in full).

Each round starts the server of each tree in turn (`python -m service` run from that tree, one
intra-op thread, pinned to core 0), warms it up, drives it with wrk from core 1 and reads every
server thread's CPU time from /proc around the measured run. Per tree it reports requests per
second and CPU µs per request of the event loop (the main thread) and of the other threads (the
batch worker: ONNX Runtime, assembling, splitting). CPU time per request moves far less with a
drifting VM's speed than throughput does, and alternating the trees spreads the drift over both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bodies import write_requests
from benchmarks.closedloop import run_wrk
from benchmarks.config import DEFAULT_STORE, WORK_DIR
from benchmarks.contenders import CONTENDERS, launch_for
from benchmarks.harness.servers import Launch, free_ports, serve
from benchmarks.openloop import OpenLoopResult, run_open_loop
from benchmarks.procstat import minor_faults, thread_times
from benchmarks.reporting import cpu_model
from benchmarks.workload import Workload, load_workload


@dataclass(frozen=True)
class OpenLoopPoint:
    result: OpenLoopResult
    page_faults: int  # the server's minor faults during the run

    def ms(self, percentile: str) -> float:
        return self.result.latency_ms[percentile]


@dataclass(frozen=True)
class Sample:
    throughput: float
    loop_us: float  # event loop CPU per request
    other_us: float  # every other thread's CPU per request
    p50_ms: float
    open_loop: dict[float, OpenLoopPoint]  # by the rate offered


def _launch(tree: Path, model: str, store: Path, extra_env: dict[str, str]) -> Launch:
    port, grpc_port = free_ports(2)
    argv = [
        *(sys.executable, "-c", "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
          "runpy.run_module('service', run_name='__main__')", str(tree)),
        *("--store", str(store), "--port", str(port), "--models", model),
        *("--model-control-mode", "none", "--providers", "cpu", "--intra-op-threads", "1"),
        *("--log-level", "warning"),
    ]  # fmt: skip
    env = {
        # A free port for the gRPC door: its default, 8001, may be another server's on a
        # shared machine, and the server would not start. An environment variable, not a flag:
        # a checkout from before the gRPC door ignores it.
        "INDUCTIVE_GRPC_PORT": str(grpc_port),
        "INDUCTIVE_BATCHING": "true",
        "INDUCTIVE_CACHE_DIR": str(WORK_DIR / "cache"),
        **extra_env,
    }
    return Launch(argv, port, ready_path=f"/v2/models/{model}/ready", env=env)


_FLOOR = Path("floor")  # in place of a tree: contenders/floor_uvloop.py


@dataclass(frozen=True)
class Side:
    """One of the two servers compared: a tree (or the floor) and the environment it runs with."""

    letter: str  # A or B
    label: str
    tree: Path
    env: dict[str, str]


def measure(side: Side, args: argparse.Namespace, files: list[Path], workload: Workload) -> Sample:
    tree = side.tree
    log_path = WORK_DIR / "logs" / f"compare-{side.letter}.log"
    if tree == _FLOOR:
        launch = launch_for(CONTENDERS["floor"], workload, args.store, WORK_DIR)
    else:
        launch = _launch(tree, args.model, args.store, side.env)
    with serve(launch, core=0, log_path=log_path) as running:
        url = running.url + workload.path
        run_wrk(url, files, connections=args.concurrency, duration_s=3, core=1)  # warm-up
        before = thread_times(running.pid)
        result = run_wrk(url, files, connections=args.concurrency, duration_s=args.seconds, core=1)
        after = thread_times(running.pid)
        open_loop = {}
        for rate in args.open_loop:
            faults = minor_faults(running.pid)
            point = run_open_loop(
                running.url,
                files,
                rate=rate,
                seconds=args.open_loop_seconds,
                connections=256,
                core=1,
            )
            open_loop[rate] = OpenLoopPoint(point, minor_faults(running.pid) - faults)
    requests = max(result.requests, 1)

    def cpu(threads: set[int]) -> float:
        spent = sum(sum(after[t]) - sum(before.get(t, (0.0, 0.0))) for t in threads)
        return spent / requests * 1e6

    loop = {running.pid} & after.keys()
    return Sample(
        result.throughput, cpu(loop), cpu(after.keys() - loop), result.latency_ms["p50"], open_loop
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument(
        "trees", type=Path, nargs=2, help="two checkouts (before, after); `floor` for the floor"
    )
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument(
        "--open-loop", type=_rates, default=(), metavar="RATES", help="req/s, comma-separated"
    )
    parser.add_argument("--open-loop-seconds", type=float, default=5.0)
    parser.add_argument(
        "--a-env", action="append", default=[], metavar="KEY=VALUE", help="for the first server"
    )
    parser.add_argument(
        "--b-env", action="append", default=[], metavar="KEY=VALUE", help="for the second server"
    )
    args = parser.parse_args(argv)
    sides = [
        _side(letter, tree, pairs)
        for letter, tree, pairs in zip("AB", args.trees, (args.a_env, args.b_env), strict=True)
    ]
    workload = load_workload(args.store, args.model, WORK_DIR / "cache")
    files = write_requests(workload, "binary", WORK_DIR / "requests")
    samples: dict[str, list[Sample]] = {side.label: [] for side in sides}
    for round_number in range(1, args.rounds + 1):
        for side in sides:
            sample = measure(side, args, files, workload)
            samples[side.label].append(sample)
            print(
                f"round {round_number} {side.label}: {sample.throughput:,.0f} req/s, event loop "
                f"{sample.loop_us:.1f} µs/request, other threads {sample.other_us:.1f}, "
                f"p50 {sample.p50_ms:.2f} ms",
                flush=True,
            )
            for rate, point in sample.open_loop.items():
                print(
                    f"  open loop {rate:,.0f} req/s: sent {point.result.sent_rate:,.0f}, "
                    f"p50 {point.ms('p50'):.2f} ms, p99 {point.ms('p99'):.2f}, "
                    f"p99.9 {point.ms('p999'):.2f}, {point.page_faults:,} page faults"
                    f"{'' if point.result.held else ', NOT held'}",
                    flush=True,
                )
    print(f"\n`{args.model}`, binary, c={args.concurrency}, {args.rounds} rounds; {cpu_model()}")
    print(f"load average {os.getloadavg()[0]:.2f}\n")
    print("| server | req/s | event loop µs/request | other threads µs/request | p50 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, rows in samples.items():
        medians = [
            statistics.median(getattr(s, field) for s in rows)
            for field in ("throughput", "loop_us", "other_us", "p50_ms")
        ]
        print(
            f"| {label} | {medians[0]:,.0f} | {medians[1]:.1f} | {medians[2]:.1f} "
            f"| {medians[3]:.2f} |"
        )
    if args.open_loop:
        print(f"\nOpen loop, {args.open_loop_seconds:g} s per rate: median over the rounds\n")
        print(
            "| server | req/s offered | sent | p50 ms | p99 ms | p99.9 ms | page faults "
            "| rounds held |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, rows in samples.items():
            for rate in args.open_loop:
                runs = [s.open_loop[rate] for s in rows]
                p50, p99, p999 = (
                    statistics.median(r.ms(p) for r in runs) for p in ("p50", "p99", "p999")
                )
                sent = statistics.median(r.result.sent_rate for r in runs)
                faulted = statistics.median(r.page_faults for r in runs)
                rounds_held = sum(1 for r in runs if r.result.held)
                print(
                    f"| {label} | {rate:,.0f} | {sent:,.0f} | {p50:.2f} | {p99:.2f} "
                    f"| {p999:.2f} | {faulted:,.0f} | {rounds_held} of {len(runs)} |"
                )


def _rates(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated req/s, not {text!r}") from None


def _side(letter: str, tree: Path, pairs: list[str]) -> Side:
    env = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise SystemExit(f"--{letter.lower()}-env takes KEY=VALUE, not {pair!r}")
        env[key] = value
    if tree != _FLOOR:
        tree = tree.resolve()
    described = " ".join([str(tree), *pairs])
    return Side(letter, f"{letter} ({described})", tree, env)


if __name__ == "__main__":
    main()
