"""Raw HTTP/1.1 over a socket, for tests about the bytes on a connection, which clients hide."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

Response = tuple[int, dict[str, str], bytes]


def connect(
    url: str, timeout: float = 10, rcvbuf: int | None = None, sndbuf: int | None = None
) -> socket.socket:
    """A connection to the server at `url`; small `rcvbuf`/`sndbuf` (set before connecting,
    so the kernel does not grow them) make a client that reads or sends little."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.settimeout(timeout)
    sock.connect((parts.hostname, parts.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request(
    method: str, path: str, body: bytes = b"", headers: bytes = b"", host: bytes = b"Host: t\r\n"
) -> bytes:
    """An HTTP/1.1 request with a Content-Length when it has a body, and `headers` added."""
    length = b"Content-Length: %d\r\n" % len(body) if body else b""
    return f"{method} {path} HTTP/1.1\r\n".encode() + host + length + headers + b"\r\n" + body


class Reader:
    """Reads HTTP/1.1 responses (Content-Length or chunked) off a socket, one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        self.buffer += chunk
        return bool(chunk)

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            assert self._fill(), "connection closed mid-body"
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            assert self._fill(), "connection closed mid-body"
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def response(self) -> Response:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed; got {self.buffer!r}"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line(), 16):
                body += self._take(size)
                self._take(2)
            self._take(2)
        else:
            body = self._take(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    def closed(self, within: float = 5.0) -> bool:
        """True when the server closes the connection within `within` seconds with nothing
        more to read."""
        self.sock.settimeout(within)
        try:
            return not self.buffer and not self._fill()
        except TimeoutError:
            return False

    def rest(self, within: float) -> bytes:
        """Everything more the server sends until it closes (fails if it stays open)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self._fill():
                    rest, self.buffer = self.buffer, b""
                    return rest
            except TimeoutError:
                break
        raise AssertionError(f"still open after {within} s; got {self.buffer!r}")
