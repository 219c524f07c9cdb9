"""The markdown report of a run: issue 7's targets (met / missed, with the figures), then every
model's raw ONNX Runtime sweep and every contender at every concurrency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TARGET_CONCURRENCY = 32
LOADED_ABOVE = 1.5  # 1-minute load average above which the machine was not quiet


@dataclass(frozen=True)
class Target:
    requirement: str
    measured: str
    met: bool | None  # None: not measured in this run


def _point(
    results: dict[str, Any], model: str, key: str, concurrency: int
) -> dict[str, Any] | None:
    entry = results.get("models", {}).get(model, {}).get("contenders", {}).get(key)
    if not entry:
        return None
    points: list[dict[str, Any]] = entry["points"]
    return next((p for p in points if p["concurrency"] == concurrency), None)


def _raw(results: dict[str, Any], model: str, batch: int | None = None) -> dict[str, Any] | None:
    """Raw ONNX Runtime at its best batch, or at `batch`: the faster of the sweeps before and
    after the servers, so that a machine speeding up meanwhile cannot flatter a server."""
    data = results.get("models", {}).get(model, {})
    rows = [*(data.get("raw") or []), *(data.get("raw_after") or [])]
    if batch is not None:
        rows = [r for r in rows if r["batch"] == batch]
    return max(rows, key=lambda r: r["throughput"]) if rows else None


def _ratio_target(
    results: dict[str, Any], model: str, key: str, factor: float, what: str
) -> Target:
    requirement = f"`{model}` {what}, c={TARGET_CONCURRENCY}: ≥ {factor:.2f} × raw ONNX Runtime"
    point, raw = _point(results, model, key, TARGET_CONCURRENCY), _raw(results, model)
    if point is None or raw is None:
        return Target(requirement, "not measured", None)
    ratio = point["throughput"] / raw["throughput"]
    measured = (
        f"{point['throughput']:,.0f} req/s vs raw {raw['throughput']:,.0f}/s "
        f"(batch {raw['batch']}) = {ratio:.2f} ×" + _errors(point)
    )
    unbatched = _point(results, model, f"{key}-nobatch", TARGET_CONCURRENCY)
    if unbatched is not None:
        measured += (
            f" (batching off: {unbatched['throughput']:,.0f} req/s = "
            f"{unbatched['throughput'] / raw['throughput']:.2f} ×)"
        )
    floor = _point(results, model, "floor", TARGET_CONCURRENCY) if key == "binary" else None
    if floor is not None:  # what any Python server on uvloop reaches (contenders/floor_uvloop.py)
        measured += (
            f" (floor: {floor['throughput']:,.0f} req/s = "
            f"{floor['throughput'] / raw['throughput']:.2f} ×)"
        )
    return Target(requirement, measured, ratio >= factor and point["errors"] == 0)


def _errors(point: dict[str, Any]) -> str:
    return f"; {point['errors']} errors" if point["errors"] else ""


def evaluate_targets(results: dict[str, Any]) -> list[Target]:
    targets = [_ratio_target(results, "cnn", "binary", 0.80, "binary")]
    requirement = (
        f"`cnn` binary, c={TARGET_CONCURRENCY}: ≥ 2.5 × MLServer throughput and "
        "p99 < MLServer p99 / 3"
    )
    ours, peer = (_point(results, "cnn", k, TARGET_CONCURRENCY) for k in ("binary", "mlserver"))
    if ours is None or peer is None or peer["throughput"] == 0:
        targets.append(Target(requirement, "not measured", None))
    else:
        speedup = ours["throughput"] / peer["throughput"]
        p99, peer_p99 = ours["latency_ms"]["p99"], peer["latency_ms"]["p99"]
        measured = (
            f"{ours['throughput']:,.0f} vs {peer['throughput']:,.0f} req/s = {speedup:.2f} ×; "
            f"p99 {p99:.1f} ms vs {peer_p99:.1f} ms (limit {peer_p99 / 3:.1f} ms)" + _errors(ours)
        )
        met = speedup >= 2.5 and p99 < peer_p99 / 3 and ours["errors"] == 0
        targets.append(Target(requirement, measured, met))
    targets.append(_ratio_target(results, "cnn", "json", 0.55, "JSON"))
    requirement = "`cnn` binary, c=1: p50 served − p50 raw batch 1 ≤ 0.3 ms"
    point, raw1 = _point(results, "cnn", "binary", 1), _raw(results, "cnn", 1)
    if point is None or raw1 is None:
        targets.append(Target(requirement, "not measured", None))
    else:
        gap = point["latency_ms"]["p50"] - raw1["p50_ms"]
        measured = (
            f"{point['latency_ms']['p50']:.3f} ms − {raw1['p50_ms']:.3f} ms = {gap:.3f} ms"
            + _errors(point)
        )
        unbatched = _point(results, "cnn", "binary-nobatch", 1)
        if unbatched is not None:
            measured += f" (batching off: {unbatched['latency_ms']['p50'] - raw1['p50_ms']:.3f} ms)"
        targets.append(Target(requirement, measured, gap <= 0.3 and point["errors"] == 0))
    targets.append(_ratio_target(results, "resnet", "binary", 0.92, "binary"))
    return targets


def _raw_table(before: list[dict[str, Any]], after: list[dict[str, Any]] | None) -> list[str]:
    if not after:
        lines = [
            "Raw ONNX Runtime, in-process, pinned to the server core:",
            "",
            "| batch | samples/s | p50 per run (ms) | p99 per run (ms) |",
            "| ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r['batch']} | {r['throughput']:,.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |"
            for r in before
        ]
        return [*lines, ""]
    later = {r["batch"]: r for r in after}
    lines = [
        "Raw ONNX Runtime, in-process, pinned to the server core, swept before and after the "
        "servers (the targets use the faster):",
        "",
        "| batch | samples/s before | p50 ms before | samples/s after | p50 ms after |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in before:
        a = later.get(r["batch"])
        tail = "– | –" if a is None else f"{a['throughput']:,.0f} | {a['p50_ms']:.3f}"
        lines.append(f"| {r['batch']} | {r['throughput']:,.0f} | {r['p50_ms']:.3f} | {tail} |")
    return [*lines, ""]


def _fmt(value: float | None, pattern: str) -> str:
    return "–" if value is None else format(value, pattern)


def _status(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[met]


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    load = meta["load_before"][0]
    lines = [
        "# Inductive CPU benchmark",
        "",
        f"- Taken {meta['started']} on {meta['cpu']} ({meta['cores']} cores); server pinned to "
        f"core {meta['server_core']}, wrk to core {meta['client_core']}.",
        f"- {meta['duration_s']:g} s per point after a {meta['warmup_s']:g} s warm-up per server; "
        f"raw ONNX Runtime {meta['raw_seconds']:g} s per batch size; one intra-op thread "
        "everywhere.",
        f"- Load average before the run {load:.2f}, after {meta['load_after'][0]:.2f}: "
        + (
            "**taken under load** (other work shared the cores; figures are noisy)."
            if load > LOADED_ABOVE or meta["load_after"][0] > LOADED_ABOVE + 1
            else "the machine was quiet."
        ),
        f"- onnxruntime {meta['onnxruntime']}, {meta['wrk']}, Python {meta['python']}.",
        f"- Reproduce: `{meta['command']}`",
        "",
        f"## Targets of issue 7 (`cnn`, c={TARGET_CONCURRENCY} unless stated)",
        "",
        "| target | measured | status |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {t.requirement} | {t.measured} | {_status(t.met)} |" for t in evaluate_targets(results)
    ]
    lines += [
        "",
        "The ratios to raw ONNX Runtime here are one run each, against the faster of two raw "
        "sweeps over every batch size: on a machine whose speed drifts, that maximum over-states "
        "raw. `python -m benchmarks.ratio` measures them in rounds that bracket each served run "
        "between raw runs at one batch (results/cpu/ratio.md); its medians are the figures to "
        "judge the ratio targets by.",
    ]
    for model, data in results["models"].items():
        lines += ["", f"## `{model}` (version {data['version']})", ""]
        if data.get("ragged"):
            lines += [
                f"Variable-length inputs: {data['samples']} request bodies with different "
                "sequence lengths, cycled by wrk; raw ONNX Runtime pads each batch to its longest "
                "sample like the batcher does. MLServer runs without adaptive batching here (it "
                "concatenates requests and cannot pad ragged inputs). The floor batches only "
                "requests of equal length and pads nothing: it does less work than a server "
                "that batches them all, so it bounds nothing for this model.",
                "",
            ]
        if data.get("raw"):
            lines += _raw_table(data["raw"], data.get("raw_after"))
        lines += [
            "| contender | c | req/s | p50 ms | p90 ms | p99 ms | errors | mean batch "
            "| server CPU |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for entry in data["contenders"].values():
            if "error" in entry and not entry["points"]:
                lines.append(
                    f"| {entry['label']} | – | failed: {entry['error'][:120]!r} | | | | | | |"
                )
            for p in entry["points"]:
                lat = p["latency_ms"]
                lines.append(
                    f"| {entry['label']} | {p['concurrency']} | {p['throughput']:,.0f} | "
                    f"{lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | {p['errors']} | "
                    f"{_fmt(p['mean_batch'], '.1f')} | {p['server_cpu']:.2f} |"
                )
        for plot in data.get("plots", []):
            lines += ["", f"![{plot}]({plot})"]
    return "\n".join(lines) + "\n"
