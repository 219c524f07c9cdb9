"""The markdown report of a suite run: the targets (met or missed, by how much), the peers at
their best setting per concurrency, the open-loop latency curves and the rate each server holds
within the SLO, every model's raw sweep and contenders, and the peers' whole sweep last."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.reporting import fmt, machine_lines, table
from benchmarks.sweep import P99_BOUND, best_points

TARGET_CONCURRENCY = 32
HTTP = ("json", "binary")  # what the open-loop generator speaks
MLSERVER = "mlserver"
OURS = "binary"  # the contender the peer targets judge: ours with binary tensors, batching on
OURS_GRPC = "ours-grpc"  # our gRPC door, batching on (issue 19's targets)
GRPC_OVER_HTTP = 0.6  # issue 19: our gRPC at c=32 ≥ 0.6 × our HTTP binary


@dataclass(frozen=True)
class Target:
    requirement: str
    measured: str
    met: bool | None  # None: not measured in this run


def _status(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[met]


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


def peer_best(results: dict[str, Any], model: str, peer: str) -> dict[int, dict[str, Any]]:
    """The peer's best point per concurrency over all its protocols (sweep.best_points)."""
    entry = results.get("models", {}).get(model, {}).get("peers", {}).get(peer)
    return best_points(entry["sweep"]) if entry else {}


def _errors(point: dict[str, Any]) -> str:
    return f"; {point['errors']} errors" if point["errors"] else ""


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


def _setting(best: dict[str, Any]) -> str:
    knobs = ", ".join(f"{k} {v}" for k, v in (best.get("setting") or {}).items())
    return f"{best['protocol']}{', ' + knobs if knobs else ''}"


def _missed_by(ratio: float, factor: float) -> str:
    return "" if ratio >= factor else f" (short by {100 * (1 - ratio / factor):.0f} %)"


def _peer_targets(results: dict[str, Any]) -> list[Target]:
    """Ours (binary) at c=32 against each peer's best there: ≥ 3 × MLServer, ≥ 2 × the others."""
    targets = []
    ours = _point(results, "cnn", OURS, TARGET_CONCURRENCY)
    peers = results.get("models", {}).get("cnn", {}).get("peers", {})
    for key in [MLSERVER, *(k for k in peers if k != MLSERVER)]:
        factor = 3.0 if key == MLSERVER else 2.0
        entry = peers.get(key)
        label = entry["label"] if entry else key
        requirement = (
            f"`cnn` binary, c={TARGET_CONCURRENCY}: ≥ {factor:g} × {label} at its best setting"
        )
        best = peer_best(results, "cnn", key).get(TARGET_CONCURRENCY)
        if entry and entry.get("skipped"):
            targets.append(Target(requirement, f"absent: {entry['skipped']}", None))
        elif ours is None or best is None or best["throughput"] == 0:
            why = "not measured"
            if entry and entry.get("error"):
                why = f"failed: {entry['error'][-200:]}"
            elif entry and entry["sweep"]:
                why = f"no setting of it answered c={TARGET_CONCURRENCY} without errors"
            targets.append(Target(requirement, why, None))
        else:
            targets.append(_peer_target(requirement, factor, ours, best, _duel(results, key)))
    return targets


def _duel(results: dict[str, Any], peer: str) -> dict[str, Any] | None:
    """The head-to-head rounds of ours against `peer` (head_to_head.py), when the run had them."""
    entry = results.get("models", {}).get("cnn", {}).get("head_to_head", {}).get(peer)
    return entry or None


def _peer_target(
    requirement: str,
    factor: float,
    ours: dict[str, Any],
    best: dict[str, Any],
    duel: dict[str, Any] | None,
) -> Target:
    """Judged on the median ratio of the head-to-head rounds when they ran; otherwise (or when
    they failed) on the sweep's points, ours against the peer's best."""
    ratio = ours["throughput"] / best["throughput"]
    figures = f"{ours['throughput']:,.0f} vs {best['throughput']:,.0f} req/s = {ratio:.2f} ×"
    details = (
        f"; p99 {ours['latency_ms']['p99']:.1f} vs {best['latency_ms']['p99']:.1f} ms; "
        f"peer at {_setting(best)}" + _errors(ours)
    )
    if duel is None or duel.get("ratio") is None:
        measured = figures + _missed_by(ratio, factor) + details
        if duel is not None:
            measured += f" (the head-to-head rounds failed: {duel.get('error', '')[-200:]})"
        return Target(requirement, measured, ratio >= factor and ours["errors"] == 0)
    median, ratios = duel["ratio"], duel["ratios"]
    measured = (
        f"{median:.2f} ×{_missed_by(median, factor)}: median of {len(ratios)} alternating "
        f"rounds side by side ({min(ratios):.2f}–{max(ratios):.2f} ×; ours "
        f"{duel['ours_median']:,.0f} vs {duel['peer_median']:,.0f} req/s)"
        + (f"; {duel['errors']} errors" if duel["errors"] else "")
        + (f"; the peer failed {duel['peer_errors']} requests" if duel["peer_errors"] else "")
        + f"; in the sweep: {figures}{details}"
    )
    return Target(requirement, measured, median >= factor and duel["errors"] == 0)


def _slo_target(results: dict[str, Any]) -> Target:
    slo = results["meta"].get("slo_ms", 25)
    requirement = f"`cnn`: highest rate held with p99 ≤ {slo:g} ms ≥ 3 × MLServer's"
    curves = results.get("models", {}).get("cnn", {}).get("open_loop", {})
    ours, peer = curves.get(OURS), curves.get(MLSERVER)
    if not ours or not peer:
        return Target(requirement, "not measured", None)
    if not peer["slo_rate"]:
        held = f"ours {ours['slo_rate']:,.0f} req/s; MLServer held no rate measured within it"
        return Target(requirement, held, ours["slo_rate"] > 0)
    ratio = ours["slo_rate"] / peer["slo_rate"]
    measured = (
        f"{ours['slo_rate']:,.0f} vs {peer['slo_rate']:,.0f} req/s = {ratio:.2f} ×"
        + _missed_by(ratio, 3.0)
    )
    return Target(requirement, measured, ratio >= 3.0)


def _grpc_targets(results: dict[str, Any]) -> list[Target]:
    """Issue 19's: our gRPC door against our HTTP binary door, and against MLServer's gRPC at
    the best setting its sweep found (gRPC points only)."""
    grpc = _point(results, "cnn", OURS_GRPC, TARGET_CONCURRENCY)
    http = _point(results, "cnn", OURS, TARGET_CONCURRENCY)
    requirement = (
        f"`cnn` gRPC, c={TARGET_CONCURRENCY}: ≥ {GRPC_OVER_HTTP:g} × our HTTP binary (issue 19)"
    )
    if grpc is None or http is None or not http["throughput"]:
        targets = [Target(requirement, "not measured", None)]
    else:
        ratio = grpc["throughput"] / http["throughput"]
        measured = (
            f"{grpc['throughput']:,.0f} vs {http['throughput']:,.0f} req/s = {ratio:.2f} ×"
            f"{_missed_by(ratio, GRPC_OVER_HTTP)}; p99 {grpc['latency_ms']['p99']:.1f} vs "
            f"{http['latency_ms']['p99']:.1f} ms" + _errors(grpc)
        )
        met = ratio >= GRPC_OVER_HTTP and grpc["errors"] == 0
        targets = [Target(requirement, measured, met)]
    # Issue 19 asks for the comparison and sets no factor: "met" here is at least as fast.
    requirement = (
        f"`cnn` gRPC, c={TARGET_CONCURRENCY}: ours vs MLServer's gRPC at its best setting "
        "(issue 19; no factor set: met when ≥ 1 ×)"
    )
    entry = results.get("models", {}).get("cnn", {}).get("peers", {}).get(MLSERVER)
    best = best_points(entry["sweep"], ("grpc",)).get(TARGET_CONCURRENCY) if entry else None
    if grpc is None or best is None or not best["throughput"]:
        targets.append(Target(requirement, "not measured", None))
    else:
        ratio = grpc["throughput"] / best["throughput"]
        measured = (
            f"{grpc['throughput']:,.0f} vs {best['throughput']:,.0f} req/s = {ratio:.2f} ×; "
            f"p99 {grpc['latency_ms']['p99']:.1f} vs {best['latency_ms']['p99']:.1f} ms; "
            f"MLServer at {_setting(best)}" + _errors(grpc)
        )
        targets.append(Target(requirement, measured, ratio >= 1.0 and grpc["errors"] == 0))
    return targets


def evaluate_targets(results: dict[str, Any]) -> list[Target]:
    targets = [_ratio_target(results, "cnn", "binary", 0.80, "binary")]
    targets += _peer_targets(results)
    targets.append(_slo_target(results))
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
    targets += _grpc_targets(results)
    return targets


# --- sections ------------------------------------------------------------------------------------


def _raw_table(before: list[dict[str, Any]], after: list[dict[str, Any]] | None) -> list[str]:
    later = {r["batch"]: r for r in after or []}
    intro = "Raw ONNX Runtime, in-process, pinned to the server core" + (
        ", swept before and after the servers (the targets use the faster):" if after else ":"
    )
    rows = []
    for r in before:
        a = later.get(r["batch"])
        row = [r["batch"], fmt(r["throughput"]), fmt(r["p50_ms"], ".3f")]
        if after:
            row += [fmt(a["throughput"]) if a else "–", fmt(a["p50_ms"], ".3f") if a else "–"]
        rows.append(row)
    header = (
        ["batch", "samples/s before", "p50 ms before"]
        if after
        else ["batch", "samples/s", "p50 per run (ms)"]
    )
    if after:
        header += ["samples/s after", "p50 ms after"]
    return [intro, "", *table(header, rows, numeric=(0, 1, 2, 3, 4))]


def _contenders_table(data: dict[str, Any]) -> list[str]:
    rows = []
    for entry in data["contenders"].values():
        if "error" in entry and not entry["points"]:
            rows.append([entry["label"], "–", f"failed: {entry['error'][:120]!r}", *[""] * 6])
        for p in entry["points"]:
            lat = p["latency_ms"]
            rows.append([
                entry["label"], p["concurrency"], fmt(p["throughput"]), fmt(lat["p50"], ".2f"),
                fmt(lat["p90"], ".2f"), fmt(lat["p99"], ".2f"), p["errors"],
                fmt(p["mean_batch"], ".1f"), fmt(p["server_cpu"], ".2f"),
            ])  # fmt: skip
    header = ["contender", "c", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "mean batch",
              "server CPU"]  # fmt: skip
    return table(header, rows, numeric=(1, 2, 3, 4, 5, 6, 7, 8))


def _figures(point: dict[str, Any]) -> list[Any]:
    """req/s, p50 ms, p99 ms, errors of a closed-loop point."""
    latency = point["latency_ms"]
    return [fmt(point["throughput"]), fmt(latency["p50"], ".2f"), fmt(latency["p99"], ".2f"),
            point["errors"]]  # fmt: skip


def _peers_section(model: str, data: dict[str, Any], results: dict[str, Any]) -> list[str]:
    peers = data.get("peers") or {}
    if not peers:
        return []
    meta = results["meta"]
    lines = [
        f"### `{model}`: the peers at their best",
        "",
        f"Each peer ran every setting of its grid ({meta.get('peer_grid', 'full')} grid), "
        f"{meta.get('peer_duration_s', 0):g} s per point, every protocol it speaks, same cores "
        "and load as ours. Best setting per concurrency: among its error-free points there, the "
        f"highest throughput whose p99 is within {P99_BOUND:g} × the lowest p99 any of its "
        "settings reached there. The appendix lists every point.",
        "",
    ]
    concurrencies = {p["concurrency"] for e in data["contenders"].values() for p in e["points"]}
    concurrencies |= {c for key in peers for c in peer_best(results, model, key)}
    rows = []
    for concurrency in sorted(concurrencies):
        ours = _point(results, model, OURS, concurrency)
        for name, point in (
            ("Inductive binary", ours),
            ("Inductive JSON", _point(results, model, "json", concurrency)),
            ("Inductive gRPC", _point(results, model, OURS_GRPC, concurrency)),
        ):
            if point is not None:
                rows.append([concurrency, name, "(fixed)", *_figures(point), "–", "–"])
        for key, entry in peers.items():
            best = peer_best(results, model, key).get(concurrency)
            if best is None:
                continue
            ratio = ours["throughput"] / best["throughput"] if ours and best["throughput"] else None
            rows.append([
                concurrency, entry["label"], _setting(best), *_figures(best), best["candidates"],
                fmt(ratio, ".2f") + " ×" if ratio else "–",
            ])  # fmt: skip
    header = ["c", "server", "best setting", "req/s", "p50 ms", "p99 ms", "errors",
              "points compared", "ours binary ÷ it"]  # fmt: skip
    lines += table(header, rows, numeric=(0, 3, 4, 5, 6, 7, 8))
    for entry in peers.values():
        if entry.get("note"):
            lines += [f"- {entry['label']}: {entry['note']}"]
    lines.append("")
    for entry in peers.values():
        if entry.get("skipped"):
            lines += [f"- {entry['label']} is absent: {entry['skipped']}.", ""]
        elif entry.get("error") and not entry["sweep"]:
            lines += [f"- {entry['label']} is absent: it failed to install or start: "
                      f"`{entry['error'][-300:]}`", ""]  # fmt: skip
    return lines


def _head_to_head_section(model: str, data: dict[str, Any]) -> list[str]:
    duels = data.get("head_to_head") or {}
    if not duels:
        return []
    first = next(iter(duels.values()))
    lines = [
        f"### `{model}`: ours against each peer's best, side by side",
        "",
        "The sweep's best point of a peer is the fastest of many short points, the luckiest "
        "draw on a machine whose speed drifts, and ours was measured at another time. So after "
        "the sweep, ours (binary) and each peer at the setting and protocol it found best at "
        f"c={first.get('concurrency', TARGET_CONCURRENCY)} run side by side on the server core, "
        "and the load alternates between them: ours, the peer, ours, ..., ours. A round's ratio "
        "is the mean of the two points of ours around the peer's point over that point; the "
        "peer targets are judged on the median. *Errors* are the requests each failed over all "
        "its points (a peer's failures lower its figure, so the target row names them too). The "
        "server not under load waits idle beside the other: the last two columns give the most "
        "CPU (in cores) each used while idle, during any point of the other.",
        "",
    ]
    rows = []
    for duel in duels.values():
        if duel.get("ratio") is None:
            why = duel.get("error", "no point of the peer answered")[-200:]
            rows.append([duel["label"], _setting(duel), f"failed: {why}", *[""] * 7])
            continue
        peer_idle = max(p["idle_server_cpu"] for p in duel["ours"])
        ours_idle = max(p["idle_server_cpu"] for p in duel["peer"])
        rows.append([
            duel["label"], _setting(duel), len(duel["ratios"]), fmt(duel["ours_median"]),
            fmt(duel["peer_median"]), ", ".join(f"{r:.2f}" for r in duel["ratios"]),
            f"{duel['ratio']:.2f} ×", f"{duel['errors']} / {duel['peer_errors']}",
            fmt(peer_idle, ".3f"), fmt(ours_idle, ".3f"),
        ])  # fmt: skip
    header = ["peer", "its best setting", "rounds", "ours req/s (median)", "peer req/s (median)",
              "ratio per round", "median ratio", "errors (ours / peer)", "peer idle CPU",
              "ours idle CPU"]  # fmt: skip
    return [*lines, *table(header, rows, numeric=(2, 3, 4, 6, 7, 8, 9))]


def _open_loop_section(model: str, data: dict[str, Any], results: dict[str, Any]) -> list[str]:
    curves = data.get("open_loop") or {}
    if not curves:
        return []
    meta = results["meta"]
    slo = meta.get("slo_ms", 25)
    lines = [
        f"### `{model}`: latency under an open stream of requests",
        "",
        "Requests arrive at a constant rate (benchmarks/openloop.py, on the load core, "
        f"{meta.get('open_loop_connections')} keep-alive connections, each used once before the "
        "run starts so that the server has accepted them all); each latency counts from "
        "the request's due time, so time spent queued behind a slow answer counts. Rates are "
        "fractions of each server's own closed-loop capacity (the peers at the setting and "
        f"protocol that reached it), {meta.get('open_loop_s', 0):g} s each, then a bisection "
        f"for the highest rate held: every request answered 2xx, the rate offered in full, p99 "
        f"≤ {slo:g} ms.",
        "",
    ]
    ours = curves.get(OURS)
    rows = []
    for key, curve in curves.items():
        ratio = (
            ours["slo_rate"] / curve["slo_rate"]
            if ours and curve["slo_rate"] and key != OURS
            else None
        )
        rows.append([
            curve["label"], _setting(curve), fmt(curve["capacity"]), fmt(curve["slo_rate"]),
            fmt(ratio, ".2f") + " ×" if ratio else "–",
            "failed: " + curve["error"][:100] if curve.get("error") else "",
        ])  # fmt: skip
    header = ["server", "setting", "closed-loop capacity req/s",
              f"highest rate held, p99 ≤ {slo:g} ms", "ours binary ÷ it", "note"]  # fmt: skip
    lines += table(header, rows, numeric=(2, 3, 4))
    rows = []
    for curve in curves.values():
        for p in curve["points"]:
            lat, lag = p["latency_ms"], p["send_lag_ms"]
            rows.append([
                curve["label"], fmt(p["rate"]), f"{100 * p['fraction']:.0f} %", fmt(p["sent_rate"]),
                fmt(lat.get("p50"), ".2f"), fmt(lat.get("p99"), ".2f"), fmt(lat.get("p999"), ".2f"),
                p["errors"], p["queued"], fmt(lag.get("p99"), ".3f"), fmt(p["client_cpu"], ".2f"),
                f"{p.get('attempts', 1)} ({fmt(p.get('steal_ms', 0), '.0f')} ms)",
                "yes" if p["within_slo"] else "no",
            ])  # fmt: skip
    header = ["server", "offered req/s", "of capacity", "sent req/s", "p50 ms", "p99 ms",
              "p99.9 ms", "errors", "queued for a connection", "send lag p99 ms",
              "generator CPU", "attempts (steal kept)", f"held, p99 ≤ {slo:g} ms"]  # fmt: skip
    lines += [
        "Every open-loop point. *Sent* is the rate the generator offered; *send lag* is how late "
        "it sent the requests that found a free connection (its own precision), *queued* those "
        "that waited for one because the server was behind. *Attempts*: a point during which "
        "the hypervisor stole CPU time from the server's or the generator's core is measured "
        f"again, up to {meta.get('open_loop_retries', 0)} more times, for every server alike; "
        "the steal of the attempt kept is in brackets.",
        "",
        *table(header, rows, numeric=(1, *range(3, 11))),
    ]
    lines += [f"![{model}-open-loop.png]({model}-open-loop.png)", ""]
    return lines


def _appendix(results: dict[str, Any]) -> list[str]:
    lines = []
    for model, data in results["models"].items():
        for entry in (data.get("peers") or {}).values():
            if not entry["sweep"]:
                continue
            lines += [f"### `{model}`: {entry['label']}, every setting", ""]
            rows = []
            for run in entry["sweep"]:
                knobs = ", ".join(f"{k} {v}" for k, v in run["setting"].items())
                if run.get("error") and not run.get("points"):
                    failed = f"failed: {run['error'][-100:]!r}"
                    rows.append([knobs, run["protocol"], "–", failed, "", "", ""])
                rows += [
                    [knobs, run["protocol"], p["concurrency"], *_figures(p)]
                    for p in run.get("points", [])
                ]
            lines += table(["setting", "protocol", "c", "req/s", "p50 ms", "p99 ms", "errors"],
                           rows, numeric=(2, 3, 4, 5, 6))  # fmt: skip
    return lines


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# CPU benchmark: Inductive, raw ONNX Runtime and the servers users pick",
        "",
        *machine_lines(meta),
        f"- Server pinned to core {meta['server_core']}, load generator to core "
        f"{meta['client_core']}; one ONNX Runtime intra-op thread in every server. With one "
        "core, our server computes its batches on its event loop's thread (its default, "
        "`INDUCTIVE_BATCHES_ON_LOOP=auto`; service/README.md).",
        f"- Our contenders: {meta['duration_s']:g} s per point after a {meta['warmup_s']:g} s "
        f"warm-up; raw ONNX Runtime {meta['raw_seconds']:g} s per batch size; onnxruntime "
        f"{meta['onnxruntime']}, {meta['wrk']} (HTTP/1.1), h2load (gRPC).",
        "",
        f"## Targets (`cnn`, c={TARGET_CONCURRENCY} unless stated)",
        "",
    ]
    lines += table(
        ["target", "measured", "status"],
        [[t.requirement, t.measured, _status(t.met)] for t in evaluate_targets(results)],
    )
    lines += [
        "The ratios to raw ONNX Runtime here are one run each, against the faster of two raw "
        "sweeps over every batch size: on a machine whose speed drifts, that maximum over-states "
        "raw. `python -m benchmarks.ratio` measures them in rounds that bracket each served run "
        "between raw runs at one batch (results/cpu/ratio.md); its medians are the figures to "
        "judge the ratio targets by.",
        "",
    ]
    for model, data in results["models"].items():
        lines += _peers_section(model, data, results)
        lines += _head_to_head_section(model, data)
        lines += _open_loop_section(model, data, results)
    for model, data in results["models"].items():
        if "version" not in data:
            continue
        lines += [f"## `{model}` (version {data['version']})", ""]
        if data.get("ragged"):
            lines += [
                f"Variable-length inputs: {data['samples']} request bodies with different "
                "sequence lengths, cycled by wrk; raw ONNX Runtime pads each batch to its longest "
                "sample like the batcher does. The floor batches only requests of equal length "
                "and pads nothing: it does less work than a server that batches them all, so it "
                "bounds nothing for this model.",
                "",
            ]
        if data.get("raw"):
            lines += _raw_table(data["raw"], data.get("raw_after"))
        if data["contenders"]:
            lines += _contenders_table(data)
        for plot in data.get("plots", []):
            if "open-loop" not in plot:
                lines += [f"![{plot}]({plot})", ""]
    appendix = _appendix(results)
    if appendix:
        lines += ["## Appendix: every setting of every peer", "", *appendix]
    seconds = meta.get("seconds") or {}
    if seconds:
        lines += ["## How long each part took", ""]
        lines += table(["part", "seconds"], [[k, fmt(v, ",.0f")] for k, v in seconds.items()], (1,))
    return "\n".join(lines).rstrip() + "\n"
