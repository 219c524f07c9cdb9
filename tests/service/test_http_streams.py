"""Framing does not depend on how the bytes arrive: any stream of pipelined requests (inference
and other routes, Content-Length and chunked bodies, whole and percent-encoded paths) split at any
byte boundaries gets the same answers as the same stream sent in one piece."""

from __future__ import annotations

import socket
import time

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.helpers import ServerProcess
from tests.service.raw import Reader, connect, request

Answer = tuple[int, str, str | None, bytes]


def _infer_body(value: float) -> bytes:
    return orjson.dumps({"inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [value] * 4},
        {"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1.0] * 4},
    ]})  # fmt: skip


def _chunked(path: str, body: bytes, cuts: list[int]) -> bytes:
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    framed = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + framed
    )


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    """One request; only those to the unknown model `nope` are answered with an error."""
    kind = draw(st.sampled_from(["infer", "chunked", "encoded", "ready", "meta", "unknown", "rid"]))
    value = draw(st.integers(-50, 50))
    body = _infer_body(value)
    if kind == "infer":
        return request("POST", "/v2/models/add/infer", body)
    if kind == "chunked":
        cuts = sorted(set(draw(st.lists(st.integers(1, len(body) - 1), max_size=4))))
        return _chunked("/v2/models/add/infer", body, cuts)
    if kind == "encoded":
        return request("POST", "/v2/models/%61dd/versions/1/infer", body)
    if kind == "ready":
        return request("GET", "/v2/health/ready")
    if kind == "meta":
        return request("GET", "/v2/models/add")
    if kind == "unknown":
        return request("POST", "/v2/models/nope/infer", body)
    return request("POST", "/v2/models/add/infer", body, b"X-Request-ID: r%d\r\n" % value)


def _answers(server: ServerProcess, pieces: list[bytes], count: int) -> list[Answer]:
    with connect(server.url) as sock:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.002)  # its own read on the server
            sock.sendall(piece)
        reader = Reader(sock)
        answers = []
        for _ in range(count):
            status, headers, body = reader.response()
            answers.append((status, headers["content-type"], headers.get("x-request-id"), body))
        sock.shutdown(socket.SHUT_WR)
    return answers


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(_requests(), min_size=1, max_size=6), data=st.data())
def test_a_stream_split_anywhere_gets_the_answers_it_gets_whole(
    server: ServerProcess, stream: list[bytes], data: st.DataObject
) -> None:
    raw = b"".join(stream)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=10))))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    whole = _answers(server, [raw], len(stream))
    assert [status for status, *_ in whole] == [404 if b"/nope/" in r else 200 for r in stream]
    assert _answers(server, pieces, len(stream)) == whole
