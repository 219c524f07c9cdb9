"""Start a server process, wait until it answers, stop it and everything it started.

One launcher for every server the tests and benchmarks run: ours (`python -m service`), the
floor and naive contenders, and the peers (MLServer, KServe, LitServe, BentoML), each from its
own interpreter. A `Launch` says what to run and how to tell it is ready; `serve` runs it (pinned
to a core when asked) in a session of its own, so that stopping it reaches the worker processes
some peers fork; `running_server` is the tests' shortcut for our service on a store.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from model_store import add_onnx, open_store
from model_store.schema import ModelConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Launch:
    """How to run one server: its command, the port it listens on, the path that answers 200
    once it can serve, its extra environment and working directory."""

    argv: list[str]
    port: int
    ready_path: str = "/v2/health/ready"
    env: dict[str, str] = field(default_factory=dict)
    metrics_path: str | None = None  # Prometheus text with our inference/execution counters
    cwd: Path = REPO_ROOT
    grpc_address: str = ""  # host:port of a gRPC door, when the server has one


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    metrics_path: str | None = "/metrics"
    grpc_address: str = ""  # host:port of the gRPC door; empty when it is off

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics_path is None else self.url + self.metrics_path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics as `name{label="v",...}` → value (labels sorted)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, and SIGKILL if it has not exited within `timeout`; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now: every socket stays bound until all are picked (ports
    picked one after another can repeat, and a server whose HTTP and gRPC ports were the same
    one answered the readiness probe with HTTP/2 frames)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    # Not ready yet; a port that keeps answering something else ends in wait_ready's timeout.
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return False


def wait_ready(
    server: ServerProcess, timeout: float = 60, ready_path: str = "/v2/health/ready"
) -> None:
    """Polls `ready_path` until it answers 200; fails at once if the process exits."""
    deadline = time.monotonic() + timeout
    while not _answers(server.url + ready_path):
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}; log {server.log_path}:\n"
                + server.log()[-3000:]
            )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"server not ready after {timeout} s; log {server.log_path}:\n"
                + server.log()[-3000:]
            )
        time.sleep(0.1)


@contextmanager
def serve(
    launch: Launch,
    *,
    log_path: Path,
    core: int | str | None = None,
    ready_timeout_s: float = 180,
) -> Iterator[ServerProcess]:
    """Runs `launch` (on the cores of `core`, a taskset CPU list, when given) until the block
    ends, then stops it and every process of its session."""
    argv = launch.argv if core is None else ["taskset", "-c", str(core), *launch.argv]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=launch.cwd,
            env={**os.environ, **launch.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(
        process,
        f"http://127.0.0.1:{launch.port}",
        log_path,
        launch.metrics_path,
        launch.grpc_address,
    )
    try:
        wait_ready(server, ready_timeout_s, launch.ready_path)
        yield server
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
    # Stragglers of the session (a peer's worker processes) once the leader is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def service_launch(
    env: Mapping[str, str], *, port: int | None = None, ready_path: str = "/v2/health/ready"
) -> Launch:
    """`python -m service` on 127.0.0.1 with the INDUCTIVE_* settings of `env` (CPU, one
    intra-op thread, text logs, the gRPC door on a free port unless `env` says otherwise)."""
    picked = free_ports(2)
    port = picked[0] if port is None else port
    grpc_port = env.get("INDUCTIVE_GRPC_PORT") or str(picked[1])
    settings = {
        "INDUCTIVE_HOST": "127.0.0.1",
        "INDUCTIVE_PORT": str(port),
        "INDUCTIVE_GRPC_PORT": grpc_port,
        "INDUCTIVE_PROVIDERS": "cpu",
        "INDUCTIVE_INTRA_OP_THREADS": "1",
        "INDUCTIVE_LOG_FORMAT": "text",
        **env,
    }
    return Launch(
        [sys.executable, "-m", "service"],
        port,
        ready_path,
        env=settings,
        metrics_path="/metrics",
        grpc_address="" if grpc_port == "off" else f"127.0.0.1:{grpc_port}",
    )


@contextmanager
def running_server(
    store_dir: Path,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    ready_timeout: float = 60,
    wait_for: str = "/v2/health/ready",
) -> Iterator[ServerProcess]:
    """Our service on a free 127.0.0.1 port (its gRPC door on another), serving `store_dir`,
    with INDUCTIVE_* settings `env` on top of the tests' defaults; yields once `wait_for`
    answers 200 (`/v2/health/live` for a server expected not to be ready)."""
    launch = service_launch(
        {
            "INDUCTIVE_STORE": str(store_dir),
            "INDUCTIVE_CACHE_DIR": str(log_dir / "cache"),
            "INDUCTIVE_SHUTDOWN_GRACE_S": "10",
            **(env or {}),
        },
        ready_path=wait_for,
    )
    with serve(
        launch, log_path=log_dir / f"server-{launch.port}.log", ready_timeout_s=ready_timeout
    ) as server:
        try:
            yield server
        finally:
            server.terminate()


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
