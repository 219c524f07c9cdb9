"""The whole-request parser (service/http/whole_request.py) takes only plain, complete requests,
and whatever it takes, httptools reads identically: no bytes mean one request to it and another
to the parser the rest of the connection goes through."""

from __future__ import annotations

from dataclasses import dataclass, field

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.http.head_rules import HeadLimits
from service.http.whole_request import parse_whole_request

BODY = b'{"inputs":[]}'


def _request(
    path: bytes = b"/v2/models/cnn/infer", headers: bytes | None = None, body: bytes = BODY
) -> bytes:
    if headers is None:
        headers = b"Host: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return b"POST " + path + b" HTTP/1.1\r\n" + headers + b"\r\n" + body


def test_a_plain_request_is_read_whole() -> None:
    request = parse_whole_request(
        _request(headers=b"Host: t\r\nX-Request-ID:  abc\r\nContent-Length: 13\r\n")
    )
    assert request is not None
    head = request.head
    assert (head.name, head.version_text, request.body) == ("cnn", None, BODY)
    assert head.headers == [
        (b"host", b"t"),
        (b"x-request-id", b"abc"),
        (b"content-length", b"13"),
    ]
    assert head.keep_alive
    assert head.content_length == 13


def test_a_versioned_path_and_connection_close() -> None:
    request = parse_whole_request(
        _request(
            b"/v2/models/my.model-2/versions/3/infer",
            b"Host: t\r\nContent-Length: 13\r\nConnection: keep-alive, Close\r\n",
        )
    )
    assert request is not None
    head = request.head
    assert (head.name, head.version_text, head.keep_alive) == ("my.model-2", "3", False)


def test_a_request_beginning_with_the_previous_head_reuses_it() -> None:
    first = parse_whole_request(_request())
    assert first is not None
    again = parse_whole_request(_request(), first.head)
    assert again is not None
    assert again.head is first.head
    assert again.body == BODY
    other = parse_whole_request(_request(b"/v2/models/other/infer"), first.head)
    assert other is not None
    assert other.head is not first.head
    assert other.head.name == "other"
    # The same head with a body of another length than it declares is not taken whole.
    assert parse_whole_request(_request() + b" ", first.head) is None
    assert parse_whole_request(_request()[:-1], first.head) is None


@pytest.mark.parametrize(
    "data",
    [
        _request()[:-1],  # body still to come
        _request() + _request(),  # pipelined
        _request(headers=b"Transfer-Encoding: chunked\r\n", body=b"d\r\n%s\r\n0\r\n\r\n" % BODY),
        _request(headers=b"Content-Length: 13\r\nTransfer-Encoding: chunked\r\n"),
        _request(headers=b"Content-Length: 13\r\nContent-Length: 13\r\n"),
        _request(headers=b"Content-Length: +13\r\n"),
        _request(headers=b"Content-Length: 1 3\r\n"),
        _request(headers=b"Content-Length: 13 \r\n"),  # httptools' reading of it decides
        _request(headers=b"Host: t\r\n"),  # no Content-Length
        _request(headers=b"Content-Length: 13\r\nExpect: 100-continue\r\n"),
        _request(headers=b"Content-Length: 13\r\nUpgrade: websocket\r\n"),
        _request(headers=b"Content-Length: 13\r\nConnection: upgrade\r\n"),
        _request(headers=b"Content-Length : 13\r\n"),  # space before the colon
        _request(headers=b"Content-Length: 13\r\nX: a\r\n b\r\n"),  # obs-fold
        _request(headers=b"Content-Length: 13\r\nX: a\x00b\r\n"),  # control byte
        _request(headers=b"Content-Length: 13\r\nX: a\rb\r\n"),  # bare CR
        _request(headers=b"Content-Length: 13\nX: a\r\n"),  # bare LF
        _request(headers=b"Content-Length: 13\r\nX(y): a\r\n"),  # not a token
        _request().replace(b"HTTP/1.1", b"HTTP/1.0"),
        _request().replace(b"POST", b"PUT"),
        _request(b"/v2/models/c%6En/infer"),
        _request(b"/v2/models/cnn/infer?x=1"),
        _request(b"/v2/models/cnn/ready"),
        _request(b"/v2/models/a/b/infer"),
        _request(b"/v2/models//infer"),
        # Heads breaking a rule of head_rules.py: the httptools path refuses them.
        _request(headers=b"Content-Length: 13\r\n"),  # no Host
        _request(headers=b"Host: t\r\nHost: u\r\nContent-Length: 13\r\n"),
        _request(
            headers=b"Host: t\r\nContent-Length: 13\r\nAuthorization: a\r\nAuthorization: b\r\n"
        ),
        _request(
            headers=b"Host: t\r\nContent-Length: 13\r\nInference-Header-Content-Length: 2\r\n"
            b"inference-header-content-length: 2\r\n"
        ),
    ],
)
def test_anything_but_one_plain_complete_request_goes_to_httptools(data: bytes) -> None:
    assert parse_whole_request(data) is None


LIMITS = HeadLimits(line=300, head=1024, count=10)


@pytest.mark.parametrize(
    "data",
    [
        _request(b"/v2/models/" + b"m" * 300 + b"/infer"),  # request line
        _request(headers=b"Host: t\r\nContent-Length: 13\r\nX: " + b"v" * 300 + b"\r\n"),
        _request(headers=b"Host: t\r\nContent-Length: 13\r\n" + b"X: y\r\n" * 9),  # count
        _request(
            headers=b"Host: t\r\nContent-Length: 13\r\n" + (b"X: " + b"y" * 200 + b"\r\n") * 5
        ),
    ],
)
def test_a_head_above_a_limit_goes_to_httptools(data: bytes) -> None:
    assert parse_whole_request(data) is not None  # taken without limits
    assert parse_whole_request(data, limits=LIMITS) is None


@dataclass
class _Message:
    url: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False


class _Recorder:
    """httptools' callbacks, recording each message."""

    def __init__(self) -> None:
        self.messages: list[_Message] = []

    def on_message_begin(self) -> None:
        self.messages.append(_Message())

    def on_url(self, url: bytes) -> None:
        self.messages[-1].url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.messages[-1].headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.messages[-1].body += body

    def on_message_complete(self) -> None:
        self.messages[-1].complete = True


def _httptools_reading(data: bytes) -> list[_Message] | None:
    recorder = _Recorder()
    try:
        httptools.HttpRequestParser(recorder).feed_data(data)
    except httptools.HttpParserError:
        return None
    return recorder.messages


_MUTANT_BYTES = st.sampled_from(
    [b" ", b"\t", b"\r", b"\n", b"\r\n", b":", b",", b"%", b"\x00", b"\x7f", b"\xff", b"0", b"a"]
)


_EDITED = _request(
    headers=b"Host: t\r\nConnection: keep-alive\r\nContent-Length: 13\r\n"
    b"Inference-Header-Content-Length: 13\r\n"
)
_PREVIOUS = parse_whole_request(_EDITED)
assert _PREVIOUS is not None
_PREVIOUS_HEAD = _PREVIOUS.head


@settings(max_examples=2000, deadline=None)
@given(st.data())
def test_whatever_the_parser_takes_httptools_reads_the_same(data: st.DataObject) -> None:
    """Random edits of a valid request (the bytes that matter in HTTP framing, at random places):
    when the whole-request parser accepts the result, httptools sees exactly one complete message
    with the same path, headers and body."""
    raw = bytearray(_EDITED)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        edit = data.draw(st.sampled_from(["insert", "replace", "delete"]))
        piece = data.draw(_MUTANT_BYTES)
        if edit == "insert":
            raw[at:at] = piece
        elif edit == "replace":
            raw[at : at + len(piece)] = piece
        else:
            del raw[at : at + 1]
    request = parse_whole_request(bytes(raw))
    # A connection's previous head (the unedited request's) never changes what is read.
    with_previous = parse_whole_request(bytes(raw), _PREVIOUS_HEAD)
    if request is None:
        assert with_previous is None
        return
    assert with_previous is not None
    assert with_previous.body == request.body
    assert with_previous.head.raw == request.head.raw
    assert with_previous.head == request.head
    messages = _httptools_reading(bytes(raw))
    assert messages is not None
    assert len(messages) == 1
    assert messages[0].complete
    message = messages[0]
    head = request.head
    version = b"" if head.version_text is None else b"/versions/" + head.version_text.encode()
    assert message.url == b"/v2/models/" + head.name.encode() + version + b"/infer"
    assert message.headers == head.headers
    assert message.body == request.body
