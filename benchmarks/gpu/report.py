"""Markdown for the GPU benchmark, with its two targets judged on the figures."""

from __future__ import annotations

from typing import Any

from benchmarks.reporting import machine_lines


def _best_raw(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(rows, key=lambda r: r["throughput"]) if rows else None


def _served(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if "error" not in row and all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    resnet = results["models"].get("resnet")
    need = "`resnet`: served ≥ 0.85 × raw GPU throughput at best settings"
    if resnet:
        raw = _best_raw([r for rows in resnet["raw"].values() for r in rows])
        served = [r for r in resnet["served"] if "error" not in r]
        best = max(served, key=lambda r: r["samples_per_s"]) if served else None
        if raw and best:
            ratio = best["samples_per_s"] / raw["throughput"]
            text = (
                f"served {best['samples_per_s']:,.0f} samples/s ({best['label']}) vs raw "
                f"{raw['throughput']:,.0f}/s = {ratio:.2f} ×"
            )
            out.append((need, text, ratio >= 0.85 and best["errors"] == 0))
        else:
            out.append((need, "not measured", None))
    for model, data in results["models"].items():
        need = f"`{model}`: batching on ≥ 10 × batching off at c=64 (fp32)"
        on = _served(
            data["served"], precision="fp32", batching=True, io_binding=True, request_batch=1
        )
        off = _served(data["served"], precision="fp32", batching=False, request_batch=1)
        if on and off and off["samples_per_s"] > 0:
            gain = on["samples_per_s"] / off["samples_per_s"]
            text = (
                f"{on['samples_per_s']:,.0f} vs {off['samples_per_s']:,.0f} samples/s = "
                f"{gain:.1f} ×"
            )
            out.append((need, text, gain >= 10 and on["errors"] == 0))
        else:
            out.append((need, "not measured", None))
    return out


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# Inductive GPU benchmark" + (" — DRY RUN on CPU" if meta["dry_run"] else ""),
        "",
        *machine_lines(meta),
        f"- Device: {meta['device']}; provider {meta['provider']}; onnxruntime "
        f"{meta['onnxruntime']}.",
        f"- Server cores {meta['server_cores']}, wrk cores {meta['client_cores']} "
        f"(wrk threads: {meta['wrk_threads']}); {meta['duration_s']:g} s per served point, "
        f"{meta['raw_seconds']:g} s per raw point.",
    ]
    if meta["dry_run"]:
        lines.append(
            "- A dry run checks the harness end to end; its figures say nothing about a GPU."
        )
    lines += [
        "",
        "## Targets",
        "",
        "| target | measured | status |",
        "| --- | --- | --- |",
    ]
    status = {True: "**met**", False: "**missed**", None: "not measured"}
    lines += [f"| {need} | {text} | {status[met]} |" for need, text, met in targets(results)]
    for model, data in results["models"].items():
        lines += [
            "",
            f"## `{model}`",
            "",
            "Raw ONNX Runtime (samples/s; p50 per run in ms):",
            "",
            "| precision | I/O | batch | samples/s | p50 ms |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for precision, rows in data["raw"].items():
            lines += [
                f"| {precision} | {r['mode']} | {r['batch']} | {r['throughput']:,.0f} | "
                f"{r['p50_ms']:.3f} |"
                for r in rows
            ]
        lines += [
            "",
            f"Served, binary protocol, c={data['served'][0]['concurrency']}:",
            "",
            "| configuration | samples/s | req/s | p50 ms | p99 ms | errors | mean batch |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in data["served"]:
            if "error" in r:
                lines.append(f"| {r['label']} | failed: {r['error'][:100]!r} | | | | | |")
                continue
            mean = "–" if r["mean_batch"] is None else f"{r['mean_batch']:.1f}"
            lines.append(
                f"| {r['label']} | {r['samples_per_s']:,.0f} | {r['throughput']:,.0f} | "
                f"{r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | {r['errors']} | "
                f"{mean} |"
            )
    return "\n".join(lines) + "\n"
