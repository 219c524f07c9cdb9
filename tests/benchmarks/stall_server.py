"""A trivial HTTP/1.1 server for the load generator's tests: answers every request at once with
`200 ok`, except that, when told to, it stalls its whole event loop once, at the Nth request.

    python tests/benchmarks/stall_server.py PORT [--stall-at N --stall-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import time

_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class Server(asyncio.Protocol):
    requests = 0
    stall_at = -1
    stall_s = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n")[0]) if at >= 0 else 0
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            Server.requests += 1
            if Server.requests == Server.stall_at:
                time.sleep(Server.stall_s)  # blocks the loop: every connection waits
            self.transport.write(_ANSWER)
        self.buffer = buffer


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--stall-at", type=int, default=-1)
    parser.add_argument("--stall-ms", type=float, default=0.0)
    args = parser.parse_args()
    Server.stall_at, Server.stall_s = args.stall_at, args.stall_ms / 1000
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Server, "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
