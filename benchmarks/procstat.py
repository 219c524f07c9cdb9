"""Server-side measurements: CPU time of a process tree from /proc, counters from /metrics."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids.extend(int(k) for k in task.read_text().split())
        except OSError:  # the thread ended meanwhile
            continue
    return kids


def _stat_fields(path: Path) -> list[str] | None:
    try:
        stat = path.read_text()
    except OSError:  # the process or thread ended meanwhile
        return None
    # The command name may contain spaces: fields start after its closing parenthesis.
    return stat[stat.rindex(")") + 2 :].split()


def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of each thread of `pid`, by thread id."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = _stat_fields(task / "stat")
        if fields is not None:
            times[int(task.name)] = (int(fields[11]) / _TICKS, int(fields[12]) / _TICKS)
    return times


def minor_faults(pid: int) -> int:
    """Minor page faults of `pid` so far, every thread (field 10 of /proc/<pid>/stat): pages
    the process touched for the first time since they were mapped."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return int(fields[7]) if fields is not None else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its descendants (MLServer runs its model in a
    worker process), read from /proc/<pid>/stat (fields 14 and 15)."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        fields = _stat_fields(Path(f"/proc/{current}/stat"))
        if fields is None:
            continue
        total += int(fields[11]) + int(fields[12])
        stack.extend(_children(current))
    return total / _TICKS


def steal_ms(cores: tuple[int, ...], stat: str | None = None) -> float:
    """CPU time the hypervisor took from `cores` since boot, in ms (/proc/stat's eighth column
    of each `cpuN` line; 0 on bare metal). `stat` stands in for the file's text in tests."""
    text = Path("/proc/stat").read_text() if stat is None else stat
    ticks = 0
    for line in text.splitlines():
        name, _, values = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            fields = values.split()
            ticks += int(fields[7]) if len(fields) > 7 else 0
    return 1000 * ticks / _TICKS


def counter_totals(metrics_url: str, names: tuple[str, ...]) -> dict[str, float]:
    """Each named counter summed over its label sets (all versions of the served model)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    totals = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals
