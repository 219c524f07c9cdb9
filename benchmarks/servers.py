"""Start a contender's server process pinned to the server core, wait until its model is ready,
stop it (and every process it started) afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    port: int
    ready_path: str  # answers 200 once the model can serve
    env: dict[str, str] = field(default_factory=dict)
    metrics_path: str | None = None  # Prometheus /metrics with inference/execution counts


@dataclass(frozen=True)
class Running:
    pid: int
    url: str
    metrics_url: str | None
    log_path: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def serve(
    launch: Launch, *, core: int | str | None, log_path: Path, ready_timeout_s: float = 180
) -> Iterator[Running]:
    argv = launch.argv if core is None else ["taskset", "-c", str(core), *launch.argv]
    url = f"http://127.0.0.1:{launch.port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        # A session of its own, so that stopping it reaches MLServer's worker processes too.
        process = subprocess.Popen(
            argv,
            env={**os.environ, **launch.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not _answers(url + launch.ready_path):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{argv[0]} exited with {process.returncode}; log {log_path}:\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {ready_timeout_s} s; log {log_path}")
            time.sleep(0.2)
        metrics_url = url + launch.metrics_path if launch.metrics_path else None
        yield Running(process.pid, url, metrics_url, log_path)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    # Stragglers of the group (MLServer's worker processes) once the leader is gone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
