"""The probe and scrape routes the manifests use are served by the real server process, started
as the image starts it (console script, settings from INDUCTIVE_* variables, an empty store)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.dockerfile import parse
from tests.deploy.helpers import DOCKERFILE, REPO, one, render

pytestmark = pytest.mark.skipif(
    not (REPO / "service/__main__.py").exists(),
    reason="service/__main__.py (the server entry point) does not exist yet",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def grpc_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, grpc_port: int) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "store").mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INDUCTIVE_")}
    env |= {
        "INDUCTIVE_HOST": "127.0.0.1",
        "INDUCTIVE_PORT": str(port),
        "INDUCTIVE_GRPC_PORT": str(grpc_port),
        "INDUCTIVE_STORE": str(tmp / "store"),
        "INDUCTIVE_CACHE_DIR": str(tmp / "cache"),
        "INDUCTIVE_PROVIDERS": "cpu",
        "INDUCTIVE_LOG_FORMAT": "text",
    }
    # The image's ENTRYPOINT is this console script (test_dockerfile checks the mapping).
    script = Path(sys.executable).with_name("inductive-serve")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "service"]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{proc.stdout.read()}")  # type: ignore[union-attr]
            try:
                _get(base + "/v2/health/live")
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not answer within 30 s")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_probe_routes_are_served(server: str) -> None:
    deployment = one(render("overlays/gpu"), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "livenessProbe"):
        status, _ = _get(server + container[probe]["httpGet"]["path"])
        assert status == 200, (probe, status)
    # An empty store is a live server (it serves whatever gets published) but not a ready one:
    # it can serve nothing yet, and the probe's body says so (once start-up has listed the store).
    path = container["readinessProbe"]["httpGet"]["path"]
    deadline = time.monotonic() + 30
    while "start-up" in (body := _get(server + path)[1]) and time.monotonic() < deadline:
        time.sleep(0.1)
    status, body = _get(server + path)
    assert status == 503
    assert json.loads(body)["reason"].startswith("no model to serve")


def test_scrape_route_serves_our_metrics(server: str) -> None:
    monitor = one(render("monitoring"), "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    status, body = _get(server + endpoint["path"])
    assert status == 200
    assert "inductive_" in body
    assert "process_cpu_seconds_total" in body


def test_image_healthcheck_passes_against_the_server(server: str) -> None:
    health = parse(DOCKERFILE.read_text())["serve"].exec_form("HEALTHCHECK")
    port = server.rsplit(":", 1)[1]
    out = subprocess.run(
        [shutil.which("python3") or sys.executable, *health[1:]],
        env={"INDUCTIVE_PORT": port},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_grpc_health_answers_for_native_probes(server: str, grpc_port: int) -> None:
    """What a Kubernetes `grpc:` probe on the gRPC port would ask (k8s/README.md): the same
    answer as the HTTP readiness probe, which an empty store keeps at 503."""
    import grpc

    from service.grpc.protos import health_pb2

    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        answer = check(health_pb2.HealthCheckRequest(), timeout=10)
    assert _get(server + "/v2/health/ready")[0] == 503
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
