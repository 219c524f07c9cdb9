"""The connection-level slow-client guard (service/http/guard.py) against the real server:
silent connections, unfinished headers and trickled bodies are closed after their deadline,
with a JSON 408 when part of a request came; prompt clients, idle gaps within the keep-alive
and long computations are untouched."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.service.helpers import ServerProcess, running_server

HEADER_TIMEOUT_S = 1.0
GOOD = {"inputs": [
    {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
    {"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]},
]}  # fmt: skip


@pytest.fixture(scope="module")
def guarded(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "INDUCTIVE_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "INDUCTIVE_TIMEOUT_KEEP_ALIVE_S": "30",
        "INDUCTIVE_BODY_MIN_RATE": "1000",
        "INDUCTIVE_MODEL_CONTROL_MODE": "none",
    }
    with running_server(store, tmp_path_factory.mktemp("guarded"), env) as process:
        yield process


def _connect(server: ServerProcess) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    sock.settimeout(within)
    raw = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"still open after {within} s; got {raw!r}")
        except ConnectionResetError:
            break
        if not chunk:
            break
        raw += chunk
    return raw, time.monotonic() - started


def _timeout_error(raw: bytes) -> str:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), raw
    assert b"content-type: application/json" in head.lower()
    return orjson.loads(body)["error"]


def test_a_silent_connection_is_closed(guarded: ServerProcess) -> None:
    with _connect(guarded) as sock:
        raw, took = _read_until_closed(sock, 5 * HEADER_TIMEOUT_S)
    assert raw == b""
    assert took >= HEADER_TIMEOUT_S * 0.9


def test_unfinished_headers_get_a_408(guarded: ServerProcess) -> None:
    with _connect(guarded) as sock:
        sock.sendall(b"POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nContent-Le")
        raw, _ = _read_until_closed(sock, 5 * HEADER_TIMEOUT_S)
    assert "headers not received within 1 s" in _timeout_error(raw)


def test_a_trickled_body_gets_a_408(guarded: ServerProcess) -> None:
    with _connect(guarded) as sock:
        sock.sendall(b"POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100000\r\n\r\n{")  # fmt: skip
        sock.settimeout(0.3)
        deadline = time.monotonic() + 5 * HEADER_TIMEOUT_S
        raw = b""
        while time.monotonic() < deadline:
            try:
                sock.sendall(b" ")
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            raw += chunk
        else:
            pytest.fail("a trickling body kept its connection")
    assert "request body too slow" in _timeout_error(raw)


def test_prompt_clients_with_pauses_are_served(guarded: ServerProcess) -> None:
    """A keep-alive connection idle for longer than the header timeout is closed, but a client
    that sends its requests promptly is never cut off, however many it sends."""
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        started = time.monotonic()
        while time.monotonic() - started < 3 * HEADER_TIMEOUT_S:
            response = client.post("/v2/models/add/infer", json=GOOD)
            assert response.status_code == 200, response.text
            time.sleep(HEADER_TIMEOUT_S / 4)
        time.sleep(HEADER_TIMEOUT_S * 2)  # httpx reconnects when the server closed the idle one
        assert client.post("/v2/models/add/infer", json=GOOD).status_code == 200
