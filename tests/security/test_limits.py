"""CORS is off unless configured; size limits hold before anything is allocated: a request that
claims a huge tensor, or a huge body, is refused at once and the server's memory does not move."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.reliability.clients import connect
from tests.reliability.contract import error_message
from tests.service import models
from tests.service.helpers import ServerProcess, publish, running_server

ORIGIN = "https://app.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,inference-header-content-length",
}
MAX_ELEMENTS = 16 * 1024 * 1024  # the default limit
MAX_BODY = 64 * 1024 * 1024  # the default limit
TEN_GB = 10 * 1024**3


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store")
    work = tmp_path_factory.mktemp("models")
    publish(store, "add", models.add_model(work))
    publish(store, "all_types", models.all_types_model(work))
    return store


@pytest.fixture(scope="module")
def server(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default limits and CORS settings."""
    env = {"INDUCTIVE_MODEL_CONTROL_MODE": "none"}
    with running_server(store, tmp_path_factory.mktemp("server"), env) as process:
        yield process


def test_cors_is_off_by_default(server: ServerProcess) -> None:
    for path in ("/v2/models/add/infer", "/v2/health/ready"):
        preflight = httpx.options(f"{server.url}{path}", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in preflight.headers, preflight.headers
    simple = httpx.get(f"{server.url}/v2/health/ready", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_only_the_configured_origins(store: Path, tmp_path: Path) -> None:
    env = {"INDUCTIVE_MODEL_CONTROL_MODE": "none", "INDUCTIVE_CORS_ORIGINS": ORIGIN}
    with running_server(store, tmp_path, env) as server:
        url = f"{server.url}/v2/models/add/infer"
        allowed = httpx.options(url, headers=PREFLIGHT)
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in allowed.headers["access-control-allow-methods"]
        other = httpx.options(url, headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        simple = httpx.get(f"{server.url}/v2/health/ready", headers={"Origin": ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ORIGIN


def _memory_mb(server: ServerProcess) -> tuple[float, float]:
    """(resident, peak resident) of the server process in MB."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _reset_peak(server: ServerProcess) -> None:
    # Writing 5 to clear_refs resets the peak resident size (VmHWM) to the current one.
    Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")


def _binary_post(
    server: ServerProcess, model: str, inputs: list[dict], payload: bytes
) -> httpx.Response:
    header = orjson.dumps({"inputs": inputs})
    return httpx.post(
        f"{server.url}/v2/models/{model}/infer",
        content=header + payload,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=30,
    )


def _refused_fast_and_lean(server: ServerProcess, send: object, status: int, fragment: str) -> None:
    assert callable(send)
    _reset_peak(server)
    _, peak_before = _memory_mb(server)
    started = time.perf_counter()
    response = send()
    elapsed = time.perf_counter() - started
    assert fragment in error_message(response, status)
    _, peak_after = _memory_mb(server)
    assert peak_after - peak_before < 16, f"peak RSS grew by {peak_after - peak_before:.0f} MB"
    assert elapsed < 0.5, f"refusing took {elapsed * 1000:.0f} ms"


def test_a_header_claiming_a_10_gb_tensor_is_refused_before_allocation(
    server: ServerProcess,
) -> None:
    x = {"name": "x", "shape": [TEN_GB // 4, 1], "datatype": "FP32",
         "parameters": {"binary_data_size": TEN_GB}}  # fmt: skip
    _refused_fast_and_lean(
        server, lambda: _binary_post(server, "add", [x], bytes(16)), 400,
        f"above the limit of {MAX_ELEMENTS}",
    )  # fmt: skip
    json_x = {"name": "x", "shape": [TEN_GB // 4, 1], "datatype": "FP32", "data": [0]}
    _refused_fast_and_lean(
        server,
        lambda: httpx.post(f"{server.url}/v2/models/add/infer", json={"inputs": [json_x]}),
        400, f"above the limit of {MAX_ELEMENTS}",
    )  # fmt: skip


def test_a_declared_10_gb_body_is_refused_before_it_is_read(server: ServerProcess) -> None:
    """Only the headers are sent: the 413 comes back without waiting for a byte of body."""

    def send() -> httpx.Response:
        with connect(server.url, timeout=5) as sock:
            sock.sendall(b"POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\n"
                         + f"Content-Length: {TEN_GB}\r\n\r\n".encode())  # fmt: skip
            raw = b""
            while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        return httpx.Response(status, headers={"content-type": "application/json"}, content=body)

    _refused_fast_and_lean(server, send, 413, f"limit of {MAX_BODY} bytes")


def test_a_bytes_header_claiming_many_elements_is_refused_before_allocation(
    server: ServerProcess,
) -> None:
    inputs = [{"name": "in_BYTES", "shape": [1, MAX_ELEMENTS], "datatype": "BYTES",
               "parameters": {"binary_data_size": 4}}]  # fmt: skip
    _refused_fast_and_lean(
        server, lambda: _binary_post(server, "all_types", inputs, bytes(4)), 400, "in_BYTES"
    )


def test_a_json_body_costs_at_most_a_few_times_its_size(server: ServerProcess) -> None:
    values = 2_000_000  # "0.5," × 2 M: an 8 MB body, well under the 64 MB limit
    body = (b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":['
            + b"0.5," * (values - 1) + b'0.5]},{"name":"y","shape":[1,4],"datatype":"FP32",'
            b'"data":[1,2,3,4]}]}')  # fmt: skip
    _reset_peak(server)
    _, peak_before = _memory_mb(server)
    response = httpx.post(f"{server.url}/v2/models/add/infer", content=body, timeout=30)
    assert "needs 4 elements" in error_message(response, 400)
    _, peak_after = _memory_mb(server)
    growth = peak_after - peak_before
    assert growth < 4 * len(body) / 2**20, f"peak RSS grew by {growth:.0f} MB for {len(body)} B"
