"""Per model: throughput vs concurrency (every contender, each peer at its best setting, raw ONNX
Runtime as reference lines), latency percentiles per contender and concurrency, and open-loop
latency vs offered load (every contender on one chart). matplotlib with the Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend must be chosen first

from benchmarks.sweep import best_points


def throughput_plot(model: str, data: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for entry in data["contenders"].values():
        points = entry["points"]
        if points:
            ax.plot(
                [p["concurrency"] for p in points],
                [p["throughput"] for p in points],
                marker="o",
                label=entry["label"],
            )
    for entry in (data.get("peers") or {}).values():
        best = best_points(entry["sweep"])
        if best:
            ax.plot(
                list(best),
                [p["throughput"] for p in best.values()],
                marker="s",
                linestyle="--",
                label=f"{entry['label']}, best setting",
            )
    if data.get("raw"):
        best_raw = max(data["raw"], key=lambda r: r["throughput"])
        ax.axhline(
            best_raw["throughput"],
            color="black",
            linestyle="--",
            label=f"raw ONNX Runtime, batch {best_raw['batch']}",
        )
        one = data["raw"][0]
        ax.axhline(
            one["throughput"],
            color="grey",
            linestyle=":",
            label=f"raw ONNX Runtime, batch {one['batch']}",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent connections (closed loop)")
    ax.set_ylabel("inferences / s")
    ax.set_title(f"{model}: throughput, server on one core")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_plot(model: str, data: dict[str, Any], path: Path) -> None:
    entries = [e for e in data["contenders"].values() if e["points"]]
    levels = sorted({p["concurrency"] for e in entries for p in e["points"]})
    fig, axes = plt.subplots(
        1, max(1, len(levels)), figsize=(3.2 * max(1, len(levels)), 4.5), sharey=True, squeeze=False
    )
    width = 0.8 / max(1, len(entries))
    for ax, level in zip(axes[0], levels, strict=False):
        for i, entry in enumerate(entries):
            point = next((p for p in entry["points"] if p["concurrency"] == level), None)
            if point is None:
                continue
            values = [point["latency_ms"][q] for q in ("p50", "p90", "p99")]
            ax.bar([x + i * width for x in range(3)], values, width, label=entry["label"])
        ax.set_xticks([x + 0.4 - width / 2 for x in range(3)], ["p50", "p90", "p99"])
        ax.set_title(f"c={level}")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("latency (ms)")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(f"{model}: latency percentiles (closed loop)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def open_loop_plot(model: str, curves: dict[str, Any], slo_ms: float, path: Path) -> None:
    """p50 (dotted) and p99 (solid) latency from the due time against the offered rate."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for curve in curves.values():
        points = [p for p in curve["points"] if p["latency_ms"]]
        if not points:
            continue
        rates = [p["rate"] for p in points]
        (line,) = ax.plot(
            rates,
            [p["latency_ms"]["p99"] for p in points],
            marker="o",
            label=f"{curve['label']} p99",
        )
        ax.plot(
            rates,
            [p["latency_ms"]["p50"] for p in points],
            marker=".",
            linestyle=":",
            color=line.get_color(),
        )
    ax.axhline(slo_ms, color="red", linestyle="--", linewidth=1, label=f"SLO: p99 {slo_ms:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (requests / s, constant arrival rate)")
    ax.set_ylabel("latency from due time (ms): p99 solid, p50 dotted")
    ax.set_title(f"{model}: latency against offered load, server on one core")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(results: dict[str, Any], out_dir: Path) -> None:
    """Writes the plots and records their file names in results['models'][m]['plots']."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for model, data in results["models"].items():
        # The outputs are written after each part of a run: plot what was measured so far.
        measured = any(e["points"] for e in data.get("contenders", {}).values())
        names = []
        if measured or data.get("peers"):
            names.append(f"{model}-throughput.png")
            throughput_plot(model, data, out_dir / names[-1])
        if measured:
            names.append(f"{model}-latency.png")
            latency_plot(model, data, out_dir / names[-1])
        if data.get("open_loop"):
            names.append(f"{model}-open-loop.png")
            slo = results["meta"].get("slo_ms", 25.0)
            open_loop_plot(model, data["open_loop"], slo, out_dir / names[-1])
        data["plots"] = names
