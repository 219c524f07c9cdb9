"""The compare report: `compare.md` (headline and table), `compare.json`, `compare.png`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from training.compare import ComparePlan, Outcome
from training.pipeline import describe_train_config
from training.selection import Interval, Summary, best_by_validation

MARKDOWN_FILE = "compare.md"
JSON_FILE = "compare.json"
PLOT_FILE = "compare.png"


@dataclass(frozen=True)
class Provenance:
    """Where and how the figures were made, written at the top of the report."""

    command: str
    started_utc: str
    machine: str  # CPU count, torch version and threads, load average: the figures depend on it
    note: str = ""


def write_report(
    out_dir: Path, plan: ComparePlan, outcome: Outcome, provenance: Provenance
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        write_markdown(out_dir / MARKDOWN_FILE, plan, outcome, provenance),
        write_json(out_dir / JSON_FILE, plan, outcome, provenance),
        plot(out_dir / PLOT_FILE, outcome.summaries),
    ]


def _interval_json(interval: Interval) -> dict[str, Any]:
    half = None if math.isnan(interval.half_width) else interval.half_width
    return {"mean": interval.mean, "half_width_95": half, "n": interval.n}


def _epochs_text(plan: ComparePlan) -> str:
    per_dataset = ", ".join(
        f"{d} {plan.config_for(d, 0).epochs} (batch {plan.config_for(d, 0).batch_size})"
        for d in plan.datasets
    )
    return f"epochs at most: {per_dataset}"


def write_markdown(path: Path, plan: ComparePlan, outcome: Outcome, provenance: Provenance) -> Path:
    base = plan.base_config
    best = best_by_validation(outcome.summaries)
    seeds = ", ".join(str(s) for s in plan.seeds)
    lines = [
        "# Architectures compared",
        "",
        f"Made {provenance.started_utc} in {outcome.wall_time_s / 60:.0f} min on "
        f"{provenance.machine}.",
        *([provenance.note] if provenance.note else []),
        "",
        f"Reproduce: `{provenance.command}`",
        "",
        f"Seeds {seeds}: each seed sets the initial weights, the batch order and the validation "
        f"split (10 % of the training split). {_epochs_text(plan)}; early stopping patience "
        f"{base.patience}, AdamW lr {base.lr:g}, weight decay {base.weight_decay:g}. The weights "
        "kept are those of the epoch with the best validation accuracy, so epochs are chosen on "
        "validation too. Figures are means over the seeds ± the half-width of a 95 % Student-t "
        "interval. Latency: the first seed's ONNX export, ONNX Runtime on one CPU thread, "
        "batch 1, median of 200.",
        "",
        "## Headline: per dataset, the best architecture on validation, and its test accuracy",
        "",
        "| dataset | chosen on validation | validation accuracy | test accuracy |",
        "|---|---|---:|---:|",
        *(f"| {d} | {s.arch} | {s.val} | **{s.test}** |" for d, s in best.items()),
        "",
        "The test column is reported, never used to choose: choosing on test would make the "
        "figure the best of several noisy draws, biased upwards.",
        "",
        "## Every architecture on every dataset it fits",
        "",
        "| dataset | architecture | params | validation accuracy | test accuracy | "
        "best epoch per seed | train s / seed | latency / sample (ms) |",
        "|---|---|---:|---:|---:|---|---:|---:|",
        *(_row(s, best) for s in outcome.summaries),
        "",
        f"![validation and test accuracy per architecture]({PLOT_FILE})",
        "",
        f"Every run (one row per seed) is in `{JSON_FILE}`.",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def _row(s: Summary, best: dict[str, Summary]) -> str:
    arch = f"**{s.arch}**" if best.get(s.dataset) is s else s.arch
    latency = "—" if s.latency_ms is None else f"{s.latency_ms:.3f}"
    epochs = ", ".join(str(e) for e in s.best_epochs)
    return (
        f"| {s.dataset} | {arch} | {s.parameters:,} | {s.val} | {s.test} | {epochs} | "
        f"{s.train_time_s:.0f} | {latency} |"
    )


def write_json(path: Path, plan: ComparePlan, outcome: Outcome, provenance: Provenance) -> Path:
    best = best_by_validation(outcome.summaries)
    document = {
        "provenance": asdict(provenance),
        "wall_time_s": outcome.wall_time_s,
        "plan": {
            "datasets": list(plan.datasets),
            "archs": list(plan.archs),
            "seeds": list(plan.seeds),
            "configs": {
                d: describe_train_config(plan.config_for(d, plan.seeds[0])) for d in plan.datasets
            },
        },
        "selection": {
            d: {"arch": s.arch, "chosen_on": "validation mean", "test": _interval_json(s.test)}
            for d, s in best.items()
        },
        "summaries": [
            {
                **{k: v for k, v in asdict(s).items() if k not in ("val", "test")},
                "val_accuracy": _interval_json(s.val),
                "test_accuracy": _interval_json(s.test),
            }
            for s in outcome.summaries
        ],
        "runs": [asdict(r) for r in outcome.runs],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def plot(path: Path, summaries: list[Summary]) -> Path:
    """Per dataset, validation and test accuracy per architecture with 95 % error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = best_by_validation(summaries)
    names = list(dict.fromkeys(s.dataset for s in summaries))
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        rows = [s for s in summaries if s.dataset == name]
        xs = range(len(rows))
        for offset, label, pick in ((-0.18, "validation", "val"), (0.18, "test", "test")):
            intervals: list[Interval] = [getattr(s, pick) for s in rows]
            errors = [0.0 if math.isnan(i.half_width) else i.half_width for i in intervals]
            ax.bar(
                [x + offset for x in xs],
                [i.mean for i in intervals],
                width=0.36,
                yerr=errors,
                capsize=3,
                label=label,
            )
        ax.set_xticks(
            list(xs),
            [f"{s.arch}{' *' if best[name] is s else ''}" for s in rows],
            rotation=30,
        )
        low = min(min(s.val.mean, s.test.mean) for s in rows)
        ax.set_ylim(max(0.0, low - 0.1), 1.0)
        ax.set(title=f"{name} (* chosen on validation)", ylabel="accuracy, mean ± 95 % CI")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def machine_description() -> str:
    """CPU count, torch and its threads, and the load average: the figures depend on all three."""
    import os
    import platform

    import torch

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs (load average {load} at the start), "
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s)"
    )
