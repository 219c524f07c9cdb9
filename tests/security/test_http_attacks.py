"""The HTTP layer tried as an attacker would, with raw sockets against the real server: request
smuggling through an upgrade, connections held by WebSocket upgrades or past the connection limit,
a client that pipelines and never reads, duplicated singleton headers, oversized heads, an early
413 the client must still read, and client-caused conditions flooding the log.

Each test names the attack; the module's server has a connection limit of 50."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from model_store.schema import BatchingConfig, ModelConfig
from tests.reliability.contract import error_message
from tests.service import models
from tests.service.helpers import ServerProcess, publish, running_server
from tests.service.raw import Reader, connect, request

MAX_CONNECTIONS = 50
MAX_BODY = 1024 * 1024
ADD_BODY = orjson.dumps({"inputs": [
    {"name": n, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]} for n in ("x", "y")
]})  # fmt: skip
OTHER_SERVED = 'inductive_inference_requests_total{model="other",outcome="success",version="1"}'


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`add`; `other`, the same model under another name (the smuggler's target); `windowed`,
    whose batches wait 200 ms to fill (its requests stay queued a while)."""
    store = tmp_path_factory.mktemp("store")
    work = tmp_path_factory.mktemp("models")
    publish(store, "add", models.add_model(work))
    publish(store, "other", models.add_model(work))
    window = ModelConfig(batching=BatchingConfig(max_batch_size=8, max_queue_delay_ms=200))
    publish(store, "windowed", models.add_model(work), config=window)
    return store


@pytest.fixture(scope="module")
def server(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "INDUCTIVE_MODEL_CONTROL_MODE": "none",
        "INDUCTIVE_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "INDUCTIVE_MAX_BODY_BYTES": str(MAX_BODY),
    }
    with running_server(store, tmp_path_factory.mktemp("server"), env) as process:
        yield process


def _error(response: tuple[int, dict[str, str], bytes], status: int) -> str:
    got, headers, body = response
    assert got == status, (got, body)
    assert headers["content-type"] == "application/json"
    message: str = orjson.loads(body)["error"]
    assert message
    return message


def _other_served(server: ServerProcess) -> float:
    return server.metrics().get(OTHER_SERVED, 0.0)


def _infer_ok(server: ServerProcess) -> None:
    response = httpx.post(f"{server.url}/v2/models/add/infer", content=ADD_BODY, timeout=10)
    assert response.status_code == 200, response.text


# --- 1. request smuggling through an upgrade ---------------------------------------------------

SMUGGLED = request("POST", "/v2/models/other/infer", ADD_BODY)
ROUTES = [("POST", "/v2/models/add/infer"), ("GET", "/v2/health/ready"), ("POST", "/nope")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("upgrade", [b"foo", b"h2c", b"websocket"])
@pytest.mark.parametrize("same_packet", [True, False], ids=["same-packet", "later-packet"])
def test_an_upgrade_is_refused_and_its_body_never_read_as_a_request(
    server: ServerProcess, method: str, path: str, upgrade: bytes, same_packet: bool
) -> None:
    before = _other_served(server)
    head = request(
        method,
        path,
        headers=b"Connection: Upgrade\r\nUpgrade: %b\r\nContent-Length: %d\r\n"
        % (upgrade, len(SMUGGLED)),
    )
    with connect(server.url) as sock:
        sock.sendall(head + SMUGGLED if same_packet else head)
        reader = Reader(sock)
        response = reader.response()
        assert "upgrades are not supported" in _error(response, 400)
        assert response[1]["connection"] == "close"
        if not same_packet:
            with contextlib.suppress(OSError):  # closed already
                sock.sendall(SMUGGLED)
        assert reader.rest(5.0) == b"", "a second response came"
    assert _other_served(server) == before, "the upgrade's body was served as a request"


# Framings that disagree about where a body ends: a proxy in front and this server must never
# read two different requests out of the same bytes, so each is refused and the connection
# closed, and the request written after it is never served.
INFER_HEAD = b"POST /v2/models/add/infer HTTP/1.1\r\nHost: t\r\n"
AMBIGUOUS_FRAMING = {
    "Content-Length and Transfer-Encoding": b"Content-Length: 5\r\nTransfer-Encoding: chunked"
    b"\r\n\r\n0\r\n\r\n",
    "two Transfer-Encoding headers": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"
    b"\r\n\r\n0\r\n\r\n",
    "Transfer-Encoding chunked, chunked": b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "Transfer-Encoding gzip": b"Transfer-Encoding: gzip\r\n\r\n",
    "Transfer-Encoding xchunked": b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "space before the colon": b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "folded Transfer-Encoding": b"X-A: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "Content-Length +5": b"Content-Length: +5\r\n\r\nhello",
    "Content-Length 0x5": b"Content-Length: 0x5\r\n\r\nhello",
    "Content-Length 5, 5": b"Content-Length: 5, 5\r\n\r\nhello",
    "Content-Length overflowing 64 bits": b"Content-Length: 99999999999999999999999\r\n\r\n",
    "chunk size overflowing 64 bits": b"Transfer-Encoding: chunked\r\n\r\n"
    b"FFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
    "negative chunk size": b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n",
    "chunk longer than its size": b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n0\r\n\r\n",
    "bare LF in chunk framing": b"Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
    "Content-Length in the trailer": b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
    b"Content-Length: 5\r\n\r\n",
}


@pytest.mark.parametrize("case", list(AMBIGUOUS_FRAMING))
def test_an_ambiguous_framing_is_refused_and_what_follows_never_served(
    server: ServerProcess, case: str
) -> None:
    before = _other_served(server)
    with connect(server.url) as sock:
        sock.sendall(INFER_HEAD + AMBIGUOUS_FRAMING[case] + SMUGGLED)
        reader = Reader(sock)
        response = reader.response()
        _error(response, 400)
        assert response[1]["connection"] == "close"
        assert reader.rest(5.0) == b"", "a second response came"
    assert _other_served(server) == before, "the bytes after the framing were served"
    _infer_ok(server)


# --- 2. WebSocket upgrades holding connections; the connection limit -----------------------------

WEBSOCKET = request(
    "GET",
    "/v2/health/ready",
    b"hello",
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
)


def test_websocket_upgrades_are_refused_and_hold_no_connection(server: ServerProcess) -> None:
    socks = [connect(server.url) for _ in range(MAX_CONNECTIONS + 10)]
    try:
        for sock in socks:
            sock.sendall(WEBSOCKET)
        for sock in socks:
            reader = Reader(sock)
            _error(reader.response(), 400)
            assert reader.closed(within=5.0), "the upgrade's connection stayed open"
        _infer_ok(server)  # none of them counts toward the limit any more
    finally:
        for sock in socks:
            sock.close()


def test_the_connection_limit_refuses_with_a_json_503_and_forgets_closed_sockets(
    server: ServerProcess,
) -> None:
    held = [connect(server.url) for _ in range(MAX_CONNECTIONS + 5)]
    try:
        time.sleep(0.3)  # accepted
        refused = httpx.post(f"{server.url}/v2/models/add/infer", content=ADD_BODY, timeout=10)
        assert "too many connections" in error_message(refused, 503)
        assert refused.headers["retry-after"]
        # A WebSocket GET over the limit is refused like any request, without a traceback.
        with connect(server.url) as sock:
            sock.sendall(WEBSOCKET)
            assert Reader(sock).response()[0] in (400, 503)
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    _infer_ok(server)
    assert "Traceback" not in server.log()


# --- 3. a client that pipelines and never reads --------------------------------------------------


def _rss_mb(server: ServerProcess) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_a_client_that_pipelines_and_never_reads_is_held_back(server: ServerProcess) -> None:
    """Reading stops while the server's send buffer is full: what the server accepts stays
    bounded by socket buffers, and its memory does not grow with what the client offers."""
    one = request("GET", "/v2/models/add")
    burst = one * (1024 * 1024 // len(one))  # 1 MB of requests
    offered = 64 * 1024 * 1024
    rss_before = _rss_mb(server)
    with connect(server.url, rcvbuf=4096, sndbuf=65536) as sock:
        sock.setblocking(False)
        sent, last_progress = 0, time.monotonic()
        view = memoryview(burst)
        pos = 0
        while sent < offered and time.monotonic() - last_progress < 3.0:
            try:
                n = sock.send(view[pos:])
            except BlockingIOError:
                time.sleep(0.01)
                continue
            sent += n
            pos = (pos + n) % len(burst)
            last_progress = time.monotonic()
        rss_after = _rss_mb(server)
    assert sent < offered // 4, f"the server took {sent / 2**20:.0f} MB from a client not reading"
    assert rss_after - rss_before < 64, f"RSS {rss_before:.0f} -> {rss_after:.0f} MB"
    _infer_ok(server)


# --- 4. client-caused conditions in the log ------------------------------------------------------


def test_hanging_up_on_queued_requests_logs_no_traceback(server: ServerProcess) -> None:
    """Clients pipeline requests that wait in a batching window, read little, and hang up
    while their answers are on the way."""
    infer = request("POST", "/v2/models/windowed/infer", ADD_BODY)
    socks = [connect(server.url, rcvbuf=4096) for _ in range(10)]
    for sock in socks:
        sock.sendall(infer * 50)
    time.sleep(0.3)
    for sock in socks:
        # SO_LINGER 0: the close is a reset, the harshest way to leave.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        sock.close()
    time.sleep(0.5)
    _infer_ok(server)
    log = server.log()
    assert "Traceback" not in log
    assert "handler is closed" not in log


def test_a_burst_of_bad_requests_logs_a_line_not_a_flood(server: ServerProcess) -> None:
    before = server.log().count("bad request")
    for _ in range(100):
        with connect(server.url) as sock:
            sock.sendall(b"BLAH / HTTP/1.1\r\nHost: t\r\n\r\n")
            _error(Reader(sock).response(), 400)
    logged = server.log().count("bad request") - before
    assert logged <= 2, f"{logged} log lines for 100 bad requests"
    assert "Traceback" not in server.log()


# --- 5. header rules and limits ------------------------------------------------------------------

INFER = "/v2/models/add/infer"
HEADER_CASES = {
    "two Authorization": (b"Authorization: Bearer a\r\nAuthorization: Bearer b\r\n", 400),
    "two Host": (b"Host: u\r\n", 400),
    "two Inference-Header-Content-Length": (
        b"Inference-Header-Content-Length: 10\r\nInference-Header-Content-Length: 10\r\n",
        400,
    ),
    "two Content-Length": (b"Content-Length: %d\r\n" % len(ADD_BODY), 400),
    "a 16 KiB header line": (b"X-Big: " + b"a" * 16 * 1024 + b"\r\n", 431),
    "101 headers": (b"".join(b"X-%d: 1\r\n" % i for i in range(101)), 431),
    "a 70 KiB head": (b"".join(b"X-%d: %b\r\n" % (i, b"a" * 1000) for i in range(70)), 431),
}


@pytest.mark.parametrize("path", [INFER, "/v2/health/ready"])
@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_a_head_breaking_a_rule_is_refused(server: ServerProcess, case: str, path: str) -> None:
    extra, status = HEADER_CASES[case]
    method = "POST" if path == INFER else "GET"
    with connect(server.url) as sock:
        sock.sendall(request(method, path, ADD_BODY, extra))
        reader = Reader(sock)
        response = reader.response()
        _error(response, status)
        assert response[1]["connection"] == "close"
    _infer_ok(server)


def test_http_1_1_without_host_is_refused_and_http_1_0_is_served(server: ServerProcess) -> None:
    for path, method, body in ((INFER, "POST", ADD_BODY), ("/v2/health/ready", "GET", b"")):
        with connect(server.url) as sock:
            sock.sendall(request(method, path, body, host=b""))
            assert "Host" in _error(Reader(sock).response(), 400)
        with connect(server.url) as sock:
            sock.sendall(request(method, path, body, host=b"").replace(b"HTTP/1.1", b"HTTP/1.0", 1))
            assert Reader(sock).response()[0] == 200


@pytest.mark.parametrize(
    "line", [b"GET /v2/health/ready HTTP/2.0", b"GET /v2/health/ready"], ids=["2.0", "0.9"]
)
def test_a_request_line_of_another_http_version_is_a_505(
    server: ServerProcess, line: bytes
) -> None:
    with connect(server.url) as sock:
        sock.sendall(line + b"\r\nHost: t\r\n\r\n")
        reader = Reader(sock)
        response = reader.response()
        assert "is not supported" in _error(response, 505)
        assert response[1]["connection"] == "close"
        assert reader.closed(within=5.0)


def test_a_long_request_target_is_a_414(server: ServerProcess) -> None:
    with connect(server.url) as sock:
        sock.sendall(request("GET", "/v2/models/" + "a" * 9000))
        _error(Reader(sock).response(), 414)


def test_a_megabyte_header_line_and_5000_headers_are_refused_early(server: ServerProcess) -> None:
    """Sent the way an attacker would, in pieces: refused once past the limit, not buffered."""
    for head in (
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 1024 * 1024 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: y\r\n" * 5000 + b"\r\n",
    ):
        with connect(server.url) as sock:
            reader = Reader(sock)
            try:
                for at in range(0, len(head), 4096):
                    sock.sendall(head[at : at + 4096])
            except OSError:
                pass  # refused and closed while we were still sending
            _error(reader.response(), 431)


# --- 6. an early 413 the client must still read --------------------------------------------------


@pytest.mark.slow
def test_a_client_sending_its_whole_body_first_reads_the_413(server: ServerProcess) -> None:
    """Python's http.client sends all of a 300 MB body before it reads: the server lingers,
    discarding what comes, instead of resetting the connection under the client."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    body = bytes(300 * 1024 * 1024)
    try:
        connection.request("POST", INFER, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 413
        assert f"limit of {MAX_BODY} bytes" in orjson.loads(response.read())["error"]
    finally:
        connection.close()


@pytest.fixture(scope="module")
def quick(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Lingering and the send timeout cut to a second."""
    env = {
        "INDUCTIVE_MODEL_CONTROL_MODE": "none",
        "INDUCTIVE_MAX_BODY_BYTES": str(MAX_BODY),
        "INDUCTIVE_LINGER_S": "1",
        "INDUCTIVE_SEND_TIMEOUT_S": "1",
    }
    with running_server(store, tmp_path_factory.mktemp("quick"), env) as process:
        yield process


def test_lingering_after_an_early_413_is_bounded_in_time(quick: ServerProcess) -> None:
    with connect(quick.url) as sock:
        sock.sendall(b"POST %b HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                     % (INFER.encode(), MAX_BODY + 1))  # fmt: skip
        stop = threading.Event()

        def trickle() -> None:  # a client that keeps sending after the refusal
            while not stop.is_set():
                try:
                    sock.sendall(b"x" * 1024)
                except OSError:
                    return
                time.sleep(0.05)

        sender = threading.Thread(target=trickle)
        sender.start()
        started = time.monotonic()
        try:
            reader = Reader(sock)
            _error(reader.response(), 413)
            reader.rest(5.0)  # closed
        finally:
            stop.set()
            sender.join()
        assert time.monotonic() - started < 3.0


def test_a_client_that_takes_no_responses_is_dropped(quick: ServerProcess) -> None:
    """Its connection cannot hold the server's buffers (or a connection slot) for longer than
    the send timeout."""
    one = request("GET", "/openapi.json")  # a large answer: the socket buffers fill at once
    with connect(quick.url, rcvbuf=4096) as sock:
        sock.setblocking(False)
        stalled_at = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                sock.send(one * 64)
                stalled_at = None
            except BlockingIOError:
                stalled_at = stalled_at or time.monotonic()
                time.sleep(0.05)
            except OSError:  # reset by the server
                break
        else:
            pytest.fail("the server kept a client that takes no responses")
    assert stalled_at is not None
    assert time.monotonic() - stalled_at < 5.0
    _infer_ok(quick)
