"""Every route but inference reaches the FastAPI app through the connection's ASGI bridge
(service/http/asgi.py): bodies arrive whole however they are sent (Content-Length in pieces,
chunked, after `Expect: 100-continue`), a body the app does not read leaves the connection
usable, and both kinds of route share one keep-alive connection."""

from __future__ import annotations

import orjson

from tests.security.conftest import ADMIN_TOKEN
from tests.service.helpers import ServerProcess
from tests.service.raw import Reader, connect, request

AUTH = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
# {"ready": true} padded with whitespace: well past the bridge's 64 KiB of unread body
BODY = b'{"ready": true}' + b" " * 500_000


def _index(body: bytes) -> list[dict[str, object]]:
    entries = orjson.loads(body)
    assert isinstance(entries, list)
    return entries


def test_a_large_body_reaches_a_route_in_pieces_and_chunked(server: ServerProcess) -> None:
    with connect(server.url) as sock:
        reader = Reader(sock)
        head = request("POST", "/v2/repository/index", BODY, AUTH + b"Expect: 100-continue\r\n")
        sock.sendall(head[: -len(BODY)])
        assert reader.response()[0] == 100  # asked for once the app reads the body
        for at in range(0, len(BODY), 65536):
            sock.sendall(BODY[at : at + 65536])
        status, _, answer = reader.response()
        assert status == 200, answer
        assert _index(answer)
        pieces = (BODY[:7], BODY[7:300_000], BODY[300_000:])
        chunked = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces)
        sock.sendall(
            b"POST /v2/repository/index HTTP/1.1\r\nHost: t\r\n" + AUTH
            + b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
        )  # fmt: skip
        status, _, answer = reader.response()
        assert status == 200, answer
        assert _index(answer)


def test_a_body_the_route_does_not_read_leaves_the_connection_usable(
    server: ServerProcess,
) -> None:
    with connect(server.url) as sock:
        reader = Reader(sock)
        sock.sendall(request("GET", "/v2/health/live", BODY))
        assert reader.response()[:1] == (200,)
        sock.sendall(request("POST", "/v2/repository/index", b"{}", AUTH))
        status, _, answer = reader.response()
        assert status == 200, answer
        sock.sendall(request("GET", "/v2/health/live"))
        assert reader.response()[0] == 200
