"""An OTLP/HTTP endpoint that accepts every export and keeps nothing, for measuring what tracing
costs the server (its own CPU is not the server's, and it answers at once so the exporter never
backs off or retries).

    python -m benchmarks.otlp_sink --port 4318 &
    python -m benchmarks.compare . . --b-env OTEL_TRACES_EXPORTER=otlp \\
        --b-env OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \\
        --b-env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318

It counts the exports and bytes it received, printed when it stops (SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

# An empty ExportTraceServiceResponse: zero bytes of protobuf.
_EMPTY = b""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.otlp_sink", description=__doc__)
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args(argv)
    received = {"exports": 0, "bytes": 0}

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the exporter keeps its connection

        def do_POST(self) -> None:
            size = int(self.headers.get("content-length", "0"))
            self.rfile.read(size)
            received["exports"] += 1
            received["bytes"] += size
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(_EMPTY)))
            self.end_headers()
            self.wfile.write(_EMPTY)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Sink)

    def stop(signum: int, frame: FrameType | None) -> None:
        print(f"otlp sink: {received['exports']} exports, {received['bytes']:,} bytes", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
