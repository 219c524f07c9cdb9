"""Reusable helpers for tests that need a real server: publish tiny models, start
`python -m service` on 127.0.0.1 (HTTP and gRPC on free ports), wait for readiness, read its
metrics, stop it.

Other test suites (reliability, benchmarks) import these; keep them small and general.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from model_store import add_onnx, open_store
from model_store.schema import ModelConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def publish(
    store_dir: Path,
    name: str,
    onnx_path: Path,
    *,
    config: ModelConfig | None = None,
    labels: Sequence[str] | None = None,
) -> int:
    """Publishes `onnx_path` as the next version of `name`; returns the version number."""
    return add_onnx(open_store(str(store_dir)), name, onnx_path, config=config, labels=labels)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    grpc_address: str = ""  # host:port of the gRPC door; empty when it is off

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics as `name{label="v",...}` → value (labels sorted)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)


def wait_ready(server: ServerProcess, timeout: float = 60, path: str = "/v2/health/ready") -> None:
    """Until `path` answers 200 (the readiness probe; `/v2/health/live` for a server that is
    expected not to be ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{path} not 200 after {timeout} s:\n{server.log()}")


@contextmanager
def running_server(
    store_dir: Path,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    ready_timeout: float = 60,
    wait_for: str = "/v2/health/ready",
) -> Iterator[ServerProcess]:
    """Starts `python -m service` on a free 127.0.0.1 port with INDUCTIVE_* settings `env` (its
    gRPC door on another free port unless `env` sets INDUCTIVE_GRPC_PORT), and returns once
    `wait_for` answers 200."""
    port = free_port()
    grpc_port = (env or {}).get("INDUCTIVE_GRPC_PORT") or str(free_port())
    full_env = {
        **os.environ,
        "INDUCTIVE_STORE": str(store_dir),
        "INDUCTIVE_CACHE_DIR": str(log_dir / "cache"),
        "INDUCTIVE_HOST": "127.0.0.1",
        "INDUCTIVE_PORT": str(port),
        "INDUCTIVE_GRPC_PORT": grpc_port,
        "INDUCTIVE_PROVIDERS": "cpu",
        "INDUCTIVE_INTRA_OP_THREADS": "1",
        "INDUCTIVE_LOG_FORMAT": "text",
        "INDUCTIVE_SHUTDOWN_GRACE_S": "10",
        **(env or {}),
    }
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    grpc_address = "" if grpc_port == "off" else f"127.0.0.1:{grpc_port}"
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path, grpc_address)
    try:
        wait_ready(server, ready_timeout, wait_for)
        yield server
    finally:
        server.terminate()
