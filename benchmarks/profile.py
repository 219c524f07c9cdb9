"""Where the served microseconds go: py-spy samples our server while wrk loads it.

    python -m benchmarks.profile --model cnn --seconds 20 [--protocol json] [--concurrency 32]
    python -m benchmarks.profile --model cnn --server floor   # the floor contender, same load

Writes benchmarks/results/profile/<model>-<protocol>-c<N>[-floor].speedscope.json (open it in
https://www.speedscope.app) and a markdown summary beside it: the functions holding the most
samples, by self time and including callees, across all threads of the server. Profiling the
floor (binary only) under the same load shows which of the event loop's costs any Python server
on uvloop pays and which are ours.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.bodies import write_requests
from benchmarks.closedloop import LoadResult, run_wrk
from benchmarks.config import DEFAULT_STORE, RESULTS_DIR, WORK_DIR, BenchConfig
from benchmarks.contenders import CONTENDERS, launch_for, ours_launch
from benchmarks.harness.servers import serve
from benchmarks.procstat import counter_totals, thread_times
from benchmarks.reporting import machine, machine_lines, write_report
from benchmarks.workload import ensure_store, load_workload

TOP = 25
_COMPUTE_SUM = "inductive_inference_compute_duration_seconds_sum"
_COMPUTE_COUNT = "inductive_inference_compute_duration_seconds_count"
_BATCH_SUM = "inductive_inference_batch_size_sum"
_BATCH_METRICS = (_COMPUTE_SUM, _COMPUTE_COUNT, _BATCH_SUM)


def _pyspy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy (it is in the dev extra)")
    return found


def _frame_name(frame: dict[str, Any]) -> str:
    return f"{frame['name']} ({Path(frame.get('file', '?')).name}:{frame.get('line', '?')})"


def summarize(speedscope: dict[str, Any], top: int = TOP) -> str:
    """Markdown tables of the heaviest frames, from a py-spy speedscope profile."""
    frames = speedscope["shared"]["frames"]
    names = [_frame_name(f) for f in frames]
    files = [Path(f.get("file", "?")).name for f in frames]
    own: Counter[int] = Counter()
    total: Counter[int] = Counter()
    samples = 0.0
    for profile in speedscope["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            samples += weight
            if stack:
                own[stack[-1]] += weight
            for frame in set(stack):
                total[frame] += weight
    unit = speedscope["profiles"][0].get("unit", "samples") if speedscope["profiles"] else ""
    by_file: Counter[str] = Counter()
    for frame, weight in own.items():
        by_file[files[frame]] += weight
    lines = [f"{samples:.2f} {unit} sampled, busy time only (idle threads are not sampled).", ""]
    lines += ["### Self time by source file", "", "| % | file |", "| ---: | --- |"]
    lines += [
        f"| {100 * n / max(samples, 1):.1f} | `{name}` |" for name, n in by_file.most_common(15)
    ]
    lines.append("")
    for title, counts in (("self time", own), ("including callees", total)):
        lines += [f"### Top {top} by {title}", "", "| % | frame |", "| ---: | --- |"]
        lines += [
            f"| {100 * n / max(samples, 1):.1f} | `{names[i]}` |"
            for i, n in counts.most_common(top)
        ]
        lines.append("")
    return "\n".join(lines)


def event_loop_breakdown(
    speedscope: dict[str, Any], loop_us_per_request: float, top: int = 15
) -> str:
    """Markdown: the event loop thread's self time by frame, in µs per request (its /proc CPU
    time per request spread over its py-spy samples). Native frames are not unwound, so the
    uvloop loop's own C work (socket reads, epoll, callback dispatch) shows as `Runner.run` and
    a socket write as the line calling `transport.write`."""
    frames = speedscope["shared"]["frames"]
    loop = [p for p in speedscope["profiles"] if '"MainThread"' in p.get("name", "")]
    if not loop:
        return ""
    own: Counter[int] = Counter()
    for stack, weight in zip(loop[0]["samples"], loop[0]["weights"], strict=True):
        if stack:
            own[stack[-1]] += weight
    samples = sum(own.values()) or 1.0
    lines = [
        "### Event loop thread: self time in µs per request",
        "",
        "| µs | frame |",
        "| ---: | --- |",
    ]
    for frame, weight in own.most_common(top):
        name = _frame_name(frames[frame])
        lines.append(f"| {loop_us_per_request * weight / samples:.1f} | `{name}` |")
    return "\n".join([*lines, ""])


def compute_per_sample(before: dict[str, float], after: dict[str, float]) -> str:
    """One line: ONNX Runtime time per batch and per sample inside the server, from the compute
    and batch-size histograms over the run (compare with the raw sweep of benchmarks.run)."""
    batches = after[_COMPUTE_COUNT] - before[_COMPUTE_COUNT]
    samples = after[_BATCH_SUM] - before[_BATCH_SUM]
    seconds = after[_COMPUTE_SUM] - before[_COMPUTE_SUM]
    if batches <= 0 or samples <= 0:
        return "No batch ran while wrk ran.\n"
    return (
        f"Batches computed in the server (ONNX Runtime, assembling, splitting): {batches:,.0f}, "
        f"mean batch {samples / batches:.1f}, {1e3 * seconds / batches:.3f} ms per batch = "
        f"{1e6 * seconds / samples:.0f} µs per sample.\n"
    )


def cpu_by_thread(
    pid: int,
    before: dict[int, tuple[float, float]],
    after: dict[int, tuple[float, float]],
    wall_s: float,
    result: LoadResult,
) -> tuple[str, float]:
    """Markdown: CPU time of each server thread during the load, per second and per request;
    and the event loop's µs per request.

    py-spy's shares count a thread that is runnable but waiting for the core (the batch worker
    while the event loop runs) as busy; /proc counts only the time a thread actually ran, user
    and kernel apart, so this table is what the requests cost."""
    requests = max(result.throughput * wall_s, 1.0)
    lines = [
        "### CPU time by thread while wrk ran (/proc)",
        "",
        "| thread | user (cores) | kernel (cores) | µs per request |",
        "| --- | ---: | ---: | ---: |",
    ]
    rows = []
    for tid, (user, system) in after.items():
        user0, system0 = before.get(tid, (0.0, 0.0))
        rows.append((tid, user - user0, system - system0))
    rows.sort(key=lambda row: -(row[1] + row[2]))
    total = loop_us = 0.0
    for tid, user, system in rows:
        if user + system <= 0:
            continue
        total += user + system
        us = 1e6 * (user + system) / requests
        if tid == pid:
            loop_us = us
        name = "event loop (main thread)" if tid == pid else f"thread {tid}"
        lines.append(f"| {name} | {user / wall_s:.2f} | {system / wall_s:.2f} | {us:.0f} |")
    lines += [
        f"| all | {total / wall_s:.2f} cores | | {1e6 * total / requests:.0f} |",
        "",
        "The thread with the most time besides the event loop is the model's batch worker "
        "(ONNX Runtime, assembling and splitting batches).",
        "",
    ]
    return "\n".join(lines), loop_us


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--protocol", choices=("binary", "json"), default="binary")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-batching", dest="batching", action="store_false")
    parser.add_argument("--server", choices=("inductive", "floor"), default="inductive")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="C/C++ frames too (slower)")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "profile")
    args = parser.parse_args()
    floor = args.server == "floor"
    if floor and (args.protocol != "binary" or not args.batching):
        parser.error("the floor speaks the binary extension and always batches")
    pyspy = _pyspy()
    meta = machine("python -m benchmarks.profile " + " ".join(sys.argv[1:]))
    config = BenchConfig(store=args.store, models=(args.model,))
    ensure_store(config.store, config.models)
    workload = load_workload(config.store, args.model, WORK_DIR / "cache")
    files = write_requests(workload, args.protocol, WORK_DIR / "requests")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.model}-{args.protocol}-c{args.concurrency}"
    stem += "-floor" if floor else "" if args.batching else "-nobatch"
    profile_path = args.out / f"{stem}.speedscope.json"
    if floor:
        launch = launch_for(CONTENDERS["floor"], workload, config.store, config.work_dir)
    else:
        launch = ours_launch(config.store, config.work_dir, args.model, args.batching)
    log_path = WORK_DIR / "logs" / f"profile-{stem}.log"
    with serve(launch, core=config.server_core, log_path=log_path) as running:
        url = running.url + workload.path
        run_wrk(url, files, connections=args.concurrency, duration_s=3, core=config.client_core)
        record = [
            pyspy,
            "record",
            "--pid",
            str(running.pid),
            "--duration",
            str(round(args.seconds)),
            "--rate",
            str(args.rate),
            "--format",
            "speedscope",
            "--output",
            str(profile_path),
            # Not pausing the server keeps its timing honest; native stacks need the pause.
            *(["--native"] if args.native else ["--nonblocking"]),
        ]
        spy = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        metrics_url = running.metrics_url  # the floor counts nothing
        batches_before = counter_totals(metrics_url, _BATCH_METRICS) if metrics_url else {}
        before, started = thread_times(running.pid), time.monotonic()
        # wrk runs a second longer than py-spy samples, so every sample is under load.
        result = run_wrk(
            url,
            files,
            connections=args.concurrency,
            duration_s=args.seconds + 1,
            core=config.client_core,
        )
        threads, loop_us = cpu_by_thread(
            running.pid, before, thread_times(running.pid), time.monotonic() - started, result
        )
        compute = (
            compute_per_sample(batches_before, counter_totals(metrics_url, _BATCH_METRICS))
            if metrics_url
            else ""
        )
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            sys.exit(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-1500:]}")
    speedscope = json.loads(profile_path.read_text())
    served_by = "the floor contender" if floor else f"batching {'on' if args.batching else 'off'}"
    data = {
        "meta": meta,
        "title": f"`{args.model}`, {args.protocol}, c={args.concurrency}, {served_by}",
        "load": result.to_dict(),
        "event_loop_us_per_request": loop_us,
        "speedscope": profile_path.name,
    }

    def render(data: dict[str, Any]) -> str:
        load = data["load"]
        return "\n".join([
            f"# Profile: {data['title']}",
            "",
            *machine_lines(data["meta"]),
            "",
            f"Under wrk load: {load['throughput']:,.0f} req/s, p50 {load['latency_ms']['p50']:.2f} "
            f"ms, p99 {load['latency_ms']['p99']:.2f} ms, {load['errors']} errors. Profile: "
            f"`{data['speedscope']}` (speedscope).",
            "",
            threads,
            compute,
            event_loop_breakdown(speedscope, loop_us),
            summarize(speedscope),
        ])  # fmt: skip

    print(write_report(args.out, stem, data, render))


if __name__ == "__main__":
    main()
