"""How many CPUs this process can actually use: its affinity, bounded by its cgroup's CPU quota.

A container limited to one CPU (Kubernetes `limits.cpu: 1`) still sees every core of its node in
its affinity; the kernel enforces the limit as a quota of CPU time per period (cgroup v2
`cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`). Whichever is smaller is what the process
can run on at once.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = Path("/sys/fs/cgroup/cpu")


@dataclass(frozen=True)
class UsableCpus:
    affinity: int  # CPUs the process may be scheduled on
    quota: float | None  # CPUs' worth of time its cgroup allows; None: no quota

    @property
    def count(self) -> int:
        """Whole CPUs, a fractional quota rounded up (1.5 CPUs can run two threads at once)."""
        if self.quota is None:
            return self.affinity
        return max(1, min(self.affinity, math.ceil(self.quota)))

    def __str__(self) -> str:
        quota = "no quota" if self.quota is None else f"quota {self.quota:g} CPU"
        return f"affinity {self.affinity} CPU, {quota}"


def usable_cpus(v2: Path = _CGROUP_V2, v1: Path = _CGROUP_V1) -> UsableCpus:
    return UsableCpus(len(os.sched_getaffinity(0)), _quota_v2(v2) or _quota_v1(v1))


@functools.cache
def process_cpus() -> UsableCpus:
    """Read once: the pool's size, where batches compute and every session's intra-op threads
    all follow the CPUs the server started with."""
    return usable_cpus()


def _quota_v2(path: Path) -> float | None:
    """`cpu.max` holds "<quota> <period>" in µs, or "max <period>" without a limit."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _quota_v1(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None  # -1: no limit
