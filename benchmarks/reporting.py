"""The one way the benchmarks write results: `<stem>.json` (every figure) and `<stem>.md` (the
report) side by side, the same facts about the machine in each, tables built one way."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOADED_ABOVE = 1.5  # 1-minute load average above which a 2-core machine was not quiet


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine(command: str) -> dict[str, Any]:
    """What every result records about where and how it was taken."""
    return {
        "started": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "command": command,
        "load_before": os.getloadavg(),
    }


def machine_summary() -> str:
    """One line for a JSON record: the CPU, its cores and how loaded the machine was."""
    load = os.getloadavg()[0]
    state = "quiet" if load <= LOADED_ABOVE else "under load: other work shared the cores"
    return f"{cpu_model()} ({os.cpu_count()} cores), load average {load:.2f} at the start ({state})"


def write_json_record(results_dir: Path, report: dict[str, Any]) -> Path:
    """A JSON record named by the minute it was written (UTC), under `results_dir`."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{datetime.now(UTC):%Y-%m-%dT%H%M}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def machine_lines(meta: dict[str, Any]) -> list[str]:
    """Markdown bullets: when, on what, how loaded, and the command that reproduces it."""
    before = meta["load_before"][0]
    after = meta.get("load_after", meta["load_before"])[0]
    quiet = before <= LOADED_ABOVE and after <= LOADED_ABOVE + 1
    return [
        f"- Taken {meta['started']} on {meta['cpu']} ({meta['cores']} cores), Python "
        f"{meta['python']}.",
        f"- Load average before the run {before:.2f}, after {after:.2f}: "
        + (
            "the machine was quiet."
            if quiet
            else "**taken under load** (other work shared the cores; figures are noisy)."
        ),
        f"- Reproduce: `{meta['command']}`",
    ]


def table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Collection[int] = ()
) -> list[str]:
    """A markdown table; the columns whose index is in `numeric` align right."""
    align = ["---:" if i in numeric else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _cell(value: Any) -> str:
    """One line, no column break: error messages carry log tails."""
    return " ".join(str(value).split()).replace("|", "\\|")


def fmt(value: float | None, pattern: str = ",.0f") -> str:
    return "–" if value is None else format(value, pattern)


def write_report(
    out_dir: Path, stem: str, data: dict[str, Any], render: Callable[[dict[str, Any]], str]
) -> str:
    """Writes `<stem>.json` and `<stem>.md` (`render(data)`) into `out_dir` and returns the
    markdown; the load average now goes into the data's meta first, when it has one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if "meta" in data:
        data["meta"]["load_after"] = os.getloadavg()
    markdown = render(data)
    (out_dir / f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
    (out_dir / f"{stem}.md").write_text(markdown)
    return markdown
