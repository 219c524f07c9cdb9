"""Run wrk with requests.lua, pinned to the load generator's core, and parse its JSON line."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).with_name("requests.lua")
_MARKER = "WRK_JSON "
INSTALL_HINT = "wrk is not installed: apt-get update && apt-get install -y wrk"


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    throughput: float  # completed requests per second
    latency_ms: dict[str, float]  # mean, p50, p90, p99, p999, max
    status_errors: int  # non-2xx/3xx answers
    socket_errors: int  # connect + read + write + timeout

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError(INSTALL_HINT)
    return path


def parse_wrk_output(stdout: str) -> WrkResult:
    """The result from the `WRK_JSON {...}` line that requests.lua's done() prints."""
    for line in stdout.splitlines():
        if line.startswith(_MARKER):
            doc = json.loads(line[len(_MARKER) :])
            break
    else:
        raise WrkError(f"no {_MARKER.strip()} line in wrk's output:\n{stdout[-2000:]}")
    errors = doc["errors"]
    duration_s = doc["duration_us"] / 1e6
    return WrkResult(
        requests=doc["requests"],
        duration_s=duration_s,
        throughput=doc["requests"] / duration_s if duration_s > 0 else 0.0,
        latency_ms={k: v / 1000 for k, v in doc["latency_us"].items()},
        status_errors=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
    )


def run_wrk(
    url: str,
    request_files: list[Path],
    *,
    connections: int,
    duration_s: float,
    core: int | str | None,
    timeout_s: float = 10.0,
    threads: int = 1,
) -> WrkResult:
    """One wrk run pinned to `core` (a taskset CPU list). One thread by default: in the CPU
    benchmark the load generator has one core, and more threads would contend for it."""
    argv = [
        *(["taskset", "-c", str(core)] if core is not None else []),
        wrk_binary(),
        *("-t", str(min(threads, connections)), "-c", str(connections)),
        *("-d", f"{max(1, round(duration_s))}s", "--timeout", f"{timeout_s:g}s"),
        *("-s", str(LUA_SCRIPT), url, "--", *(str(p) for p in request_files)),
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + timeout_s + 30, check=False
    )
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return parse_wrk_output(done.stdout)
