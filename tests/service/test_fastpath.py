"""Inference answered by the connection (service/http/connection.py, infer.py) speaks HTTP/1.1
the way uvicorn does: pipelining, keep-alive and its absence, `Expect: 100-continue`, early
refusals, limits.

Raw sockets, because the cases are about the bytes on the connection, which clients hide."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
import pytest

from tests.service.helpers import ServerProcess
from tests.service.raw import Reader

ONES = np.ones((1, 4), np.float32)


def _body(x: np.ndarray, model_input: str = "x") -> bytes:
    return orjson.dumps({"inputs": [
        {"name": n, "shape": [1, 4], "datatype": "FP32", "data": a.ravel().tolist()}
        for n, a in ((model_input, x), ("y", ONES))
    ]})  # fmt: skip


def _request(body: bytes, path: str = "/v2/models/add/infer", extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


@pytest.fixture
def conn(server: ServerProcess) -> Iterator[socket.socket]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    yield sock
    sock.close()


def _sum(body: bytes) -> list[float]:
    outputs = {o["name"]: o for o in orjson.loads(body)["outputs"]}
    return [float(v) for v in outputs["sum"]["data"]]


def test_pipelined_requests_are_answered_in_order(conn: socket.socket) -> None:
    requests = [
        _request(_body(np.full((1, 4), 1, np.float32))),
        b"GET /v2/health/ready HTTP/1.1\r\nHost: t\r\n\r\n",
        _request(_body(np.full((1, 4), 2, np.float32))),
        _request(b"{}", path="/v2/models/nope/infer"),
        _request(_body(np.full((1, 4), 3, np.float32))),
    ]
    conn.sendall(b"".join(requests))  # one write: the server parses them back to back
    reader = Reader(conn)
    status, _, body = reader.response()
    assert (status, _sum(body)) == (200, [2.0] * 4)
    assert reader.response()[0] == 200  # readiness, from the ASGI app, in its place
    status, _, body = reader.response()
    assert (status, _sum(body)) == (200, [3.0] * 4)
    status, _, body = reader.response()
    assert status == 404
    assert b"nope" in body
    status, _, body = reader.response()
    assert (status, _sum(body)) == (200, [4.0] * 4)


def test_keep_alive_serves_many_requests_on_one_connection(conn: socket.socket) -> None:
    reader = Reader(conn)
    for i in range(50):
        conn.sendall(_request(_body(np.full((1, 4), i, np.float32))))
        status, headers, body = reader.response()
        assert status == 200
        assert "connection" not in headers
        assert _sum(body) == [i + 1.0] * 4


def test_connection_close_and_http_1_0_close_after_the_answer(server: ServerProcess) -> None:
    parts = urlsplit(server.url)
    address = (parts.hostname or "", parts.port or 0)
    for request in (
        _request(_body(ONES), extra=b"Connection: close\r\n"),
        _request(_body(ONES)).replace(b"HTTP/1.1", b"HTTP/1.0", 1),
    ):
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(request)
            reader = Reader(sock)
            status, headers, body = reader.response()
            assert status == 200
            assert _sum(body) == [2.0] * 4
            assert headers["connection"] == "close"
            assert reader.closed()


def test_expect_100_continue_gets_the_interim_response_first(conn: socket.socket) -> None:
    body = _body(ONES)
    head, _, _ = _request(body, extra=b"Expect: 100-continue\r\n").partition(b"\r\n\r\n")
    conn.sendall(head + b"\r\n\r\n")
    reader = Reader(conn)
    status, _, _ = reader.response()
    assert status == 100
    conn.sendall(body)
    status, _, answer = reader.response()
    assert (status, _sum(answer)) == (200, [2.0] * 4)


def test_a_refusal_before_an_expected_body_closes_the_connection(conn: socket.socket) -> None:
    """A client that asked `Expect: 100-continue` and got a final answer may never send its
    body: the connection is not kept waiting for it."""
    body = _body(ONES)
    head, _, _ = _request(
        body, path="/v2/models/add/versions/zero/infer", extra=b"Expect: 100-continue\r\n"
    ).partition(b"\r\n\r\n")
    conn.sendall(head + b"\r\n\r\n")
    status, headers, _ = Reader(conn).response()
    assert (status, headers["connection"]) == (400, "close")


def test_a_refusal_before_the_body_leaves_the_connection_usable(conn: socket.socket) -> None:
    """The unknown model is refused once the body is in; a bad version as soon as the headers
    are: either way the connection serves the next request."""
    reader = Reader(conn)
    conn.sendall(_request(_body(ONES), path="/v2/models/add/versions/zero/infer"))
    status, _, body = reader.response()
    assert status == 400
    assert b"version" in body
    conn.sendall(_request(_body(ONES)))
    assert reader.response()[0] == 200


def test_a_declared_body_above_the_limit_is_refused_without_reading_it(
    conn: socket.socket,
) -> None:
    limit = 1024 * 1024  # INDUCTIVE_MAX_BODY_BYTES of the session's server
    conn.sendall(
        b"POST /v2/models/add/infer HTTP/1.1\r\nHost: t\r\n"
        + f"Content-Length: {limit + 1}\r\n\r\n".encode()
    )
    reader = Reader(conn)
    status, headers, body = reader.response()
    assert status == 413
    assert str(limit) in orjson.loads(body)["error"]
    assert headers["connection"] == "close"
    assert reader.closed()


def test_a_chunked_body_growing_past_the_limit_is_cut_off(conn: socket.socket) -> None:
    conn.sendall(
        b"POST /v2/models/add/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    reader = Reader(conn)
    try:
        for _ in range(40):  # 2.5 MB against a 1 MB limit
            conn.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending
    status, _, body = reader.response()
    assert status == 413
    assert b"above the limit" in body


def test_a_percent_encoded_path_is_decoded_as_uvicorn_does(conn: socket.socket) -> None:
    conn.sendall(_request(_body(ONES), path="/v2/models/%61dd/infer"))
    status, _, body = Reader(conn).response()
    assert (status, _sum(body)) == (200, [2.0] * 4)


def test_request_ids_are_echoed_by_the_fast_path(conn: socket.socket) -> None:
    conn.sendall(_request(_body(ONES), extra=b"X-Request-Id: fast-7\r\n"))
    status, headers, _ = Reader(conn).response()
    assert status == 200
    assert headers["x-request-id"] == "fast-7"


def test_each_request_is_read_by_its_own_head_on_one_connection(conn: socket.socket) -> None:
    """The fast path keeps a connection's last head and what its headers say (whole_request.py):
    a request whose head differs in any byte is read by its own, and a repeated one as before."""
    reader = Reader(conn)
    add, nope = "/v2/models/add/infer", "/v2/models/nope/infer"
    sequence = [
        (add, b"X-Request-Id: a\r\n", 200, "a"),
        (add, b"X-Request-Id: a\r\n", 200, "a"),  # the same head again
        (add, b"X-Request-Id: b\r\n", 200, "b"),
        (nope, b"X-Request-Id: b\r\n", 404, "b"),
        ("/v2/models/add/versions/9/infer", b"X-Request-Id: c\r\n", 404, "c"),
        (add, b"", 200, None),
        (add, b"X-Request-Id: a\r\n", 200, "a"),
    ]
    for path, extra, status, rid in sequence:
        conn.sendall(_request(_body(ONES), path=path, extra=extra))
        got, headers, body = reader.response()
        assert (got, headers.get("x-request-id")) == (status, rid)
        if status == 200:
            assert _sum(body) == [2.0] * 4
    # The last head once more, but asking to close: answered, then closed.
    conn.sendall(_request(_body(ONES), extra=b"X-Request-Id: a\r\nConnection: close\r\n"))
    status, headers, _ = reader.response()
    assert (status, headers["connection"]) == (200, "close")
    assert reader.closed()


def test_batches_compute_in_threads_of_lower_priority(server: ServerProcess) -> None:
    """INDUCTIVE_WORKER_NICE (default 5): the worker threads of the batchers run niced, the
    event loop (the main thread) does not."""
    response = httpx.post(f"{server.url}/v2/models/add/infer", content=_body(ONES), timeout=10)
    assert response.status_code == 200  # the worker thread starts with the first batch
    pid = server.process.pid
    nice = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        nice[int(task.name)] = int(fields[16])  # field 19 of stat, counted after the comm
    assert nice[pid] == 0
    assert 5 in nice.values(), nice
