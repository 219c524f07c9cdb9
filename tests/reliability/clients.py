"""Small request helpers shared by the fault tests: one `add` inference, raw-socket requests."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import numpy as np


def add_body(x: np.ndarray, y: np.ndarray) -> dict[str, object]:
    return {"inputs": [
        {"name": n, "shape": list(a.shape), "datatype": "FP32", "data": a.ravel().tolist()}
        for n, a in (("x", x), ("y", y))
    ]}  # fmt: skip


def infer_add(client: httpx.Client, url: str, x: np.ndarray, model: str = "add") -> np.ndarray:
    """x + x through `model` (an `add` model); raises with the server's message on an error."""
    response = client.post(f"{url}/v2/models/{model}/infer", json=add_body(x, x), timeout=30)
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    out = response.json()["outputs"][0]
    return np.asarray(out["data"], np.float32).reshape(out["shape"])


def raw_request(path: str, body: bytes, host: str = "127.0.0.1") -> bytes:
    """The bytes of an HTTP/1.1 POST, for clients that misbehave on purpose."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def connect(url: str, timeout: float = 30) -> socket.socket:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock
