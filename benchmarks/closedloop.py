"""Closed-loop load: a fixed number of connections, each sending its next request as soon as
the previous one is answered. `wrk` drives HTTP/1.1 (requests.lua replays the exact request
files bodies.py writes), `h2load` drives gRPC over HTTP/2 (one prepared request frame). Both run
pinned to the load generator's core and give the same `LoadResult`.

Closed-loop latency is what a client that waits for each answer sees: at saturation it hides the
queueing an open stream of users would meet (benchmarks/openloop.py measures that).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

LUA_SCRIPT = Path(__file__).with_name("requests.lua")
_MARKER = "WRK_JSON "
INSTALL_HINT = "wrk is not installed: apt-get update && apt-get install -y wrk"
H2LOAD_HINT = "h2load is not installed: apt-get update && apt-get install -y nghttp2-client"


class LoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadResult:
    requests: int  # answered in the measured window
    duration_s: float
    throughput: float  # answered requests per second
    latency_ms: dict[str, float]  # mean, p50, p90, p99, p999, max
    status_errors: int  # non-2xx/3xx answers, and gRPC calls that failed with HTTP 200
    socket_errors: int  # connect + read + write + timeout

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def _binary(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LoadError(hint)
    return path


def wrk_binary() -> str:
    return _binary("wrk", INSTALL_HINT)


def _pinned(core: int | str | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None else []


# --- wrk (HTTP/1.1) ------------------------------------------------------------------------------


def parse_wrk_output(stdout: str) -> LoadResult:
    """The result from the `WRK_JSON {...}` line that requests.lua's done() prints."""
    for line in stdout.splitlines():
        if line.startswith(_MARKER):
            doc = json.loads(line[len(_MARKER) :])
            break
    else:
        raise LoadError(f"no {_MARKER.strip()} line in wrk's output:\n{stdout[-2000:]}")
    errors = doc["errors"]
    duration_s = doc["duration_us"] / 1e6
    return LoadResult(
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
) -> LoadResult:
    """One wrk run pinned to `core` (a taskset CPU list). One thread by default: in the CPU
    benchmark the load generator has one core, and more threads would contend for it."""
    argv = [
        *_pinned(core),
        wrk_binary(),
        *("-t", str(min(threads, connections)), "-c", str(connections)),
        *("-d", f"{max(1, round(duration_s))}s", "--timeout", f"{timeout_s:g}s"),
        *("-s", str(LUA_SCRIPT), url, "--", *(str(p) for p in request_files)),
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + timeout_s + 30, check=False
    )
    if done.returncode != 0:
        raise LoadError(f"wrk exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return parse_wrk_output(done.stdout)


# --- h2load (gRPC) -------------------------------------------------------------------------------

_REQUESTS = re.compile(r"requests: \d+ total, \d+ started, (\d+) done")
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_DATA = re.compile(r"traffic: .*, [\d.]+\w* \((\d+)\) data")
_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")


def parse_h2load_output(stdout: str, log: str, answer_bytes: int | None) -> LoadResult:
    """h2load's summary, latencies from its per-request log (start µs, status, duration µs).

    A gRPC call that fails still answers HTTP 200 (the failure is in its grpc-status trailer),
    and h2load counts it a success; it carries no message, though. When every good answer is
    `answer_bytes` of DATA (a frame of the same message each time), the answers short of
    DATA bytes / answer_bytes are the failures."""
    requests, status, data, finished = (
        pattern.search(stdout) for pattern in (_REQUESTS, _STATUS, _DATA, _FINISHED)
    )
    if requests is None or status is None or data is None or finished is None:
        raise LoadError(f"unexpected h2load output:\n{stdout[-2000:]}")
    done = int(requests.group(1))
    codes = [int(status.group(i)) for i in range(1, 5)]  # 2xx, 3xx, 4xx, 5xx
    answered = sum(codes)
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    grpc_failures = 0
    if answer_bytes:
        good = int(data.group(1)) // answer_bytes
        grpc_failures = max(0, codes[0] - good)
    durations = np.array([int(line.split("\t")[2]) for line in log.splitlines() if line.strip()])
    ms = durations / 1000 if len(durations) else np.zeros(1)
    latency = dict(
        zip(("p50", "p90", "p99", "p999"), np.percentile(ms, [50, 90, 99, 99.9]), strict=True)
    )
    return LoadResult(
        requests=answered,
        duration_s=seconds,
        throughput=answered / seconds if seconds > 0 else 0.0,
        latency_ms={
            "mean": float(ms.mean()),
            **{k: float(v) for k, v in latency.items()},
            "max": float(ms.max()),
        },
        status_errors=sum(codes[1:]) + grpc_failures,
        # Streams that ended without an HTTP status: reset, timed out, connection lost. (Calls
        # still in flight when the duration ends are not done: neither answered nor failed.)
        socket_errors=max(0, done - answered),
    )


def run_h2load(
    url: str,
    body: Path,
    *,
    connections: int,
    duration_s: float,
    core: int | str | None,
    headers: tuple[str, ...],
    answer_bytes: int | None = None,
    streams: int = 1,
    requests: int | None = None,
) -> LoadResult:
    """`connections` HTTP/2 connections, `streams` concurrent streams each, POSTing `body` for
    `duration_s`, or until `requests` calls are done when that is given (an exact count, which
    the server's own counters can then confirm: a timed run leaves calls in flight at its end)."""
    run_for = ("-n", str(requests)) if requests else ("-D", f"{max(1, round(duration_s))}")
    with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
        argv = [
            *_pinned(core),
            _binary("h2load", H2LOAD_HINT),
            *("-c", str(connections), "-m", str(streams), "-t", "1"),
            *(*run_for, "-d", str(body), "--log-file", log.name),
            *(arg for header in headers for arg in ("-H", header)),
            url,
        ]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=600 if requests else duration_s + 60,
            check=False,
        )
        if done.returncode != 0:
            raise LoadError(f"h2load exited with {done.returncode}:\n{done.stderr[-2000:]}")
        return parse_h2load_output(done.stdout, Path(log.name).read_text(), answer_bytes)
