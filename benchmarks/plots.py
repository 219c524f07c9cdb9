"""Per model: throughput vs concurrency (raw ONNX Runtime as reference lines) and latency
percentiles per contender and concurrency. matplotlib with the Agg backend (no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend must be chosen first


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
    if data.get("raw"):
        best = max(data["raw"], key=lambda r: r["throughput"])
        ax.axhline(
            best["throughput"],
            color="black",
            linestyle="--",
            label=f"raw ONNX Runtime, batch {best['batch']}",
        )
        one = data["raw"][0]
        ax.axhline(
            one["throughput"],
            color="grey",
            linestyle=":",
            label=f"raw ONNX Runtime, batch {one['batch']}",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent connections (wrk -c)")
    ax.set_ylabel("inferences / s")
    ax.set_title(f"{model}: throughput, server on one core")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
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
    fig.suptitle(f"{model}: latency percentiles")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(results: dict[str, Any], out_dir: Path) -> None:
    """Writes the plots and records their file names in results['models'][m]['plots']."""
    for model, data in results["models"].items():
        names = [f"{model}-throughput.png", f"{model}-latency.png"]
        throughput_plot(model, data, out_dir / names[0])
        latency_plot(model, data, out_dir / names[1])
        data["plots"] = names
