"""A tiny OTLP trace collector for tests: what a server's real OTLP exporter sends (over HTTP with
protobuf bodies, or over gRPC) is decoded with the OTLP protos and kept as `ReceivedSpan`s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc

from tests.service.helpers import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]  # (trace id, span id) of each linked span
    service_name: str


class Collector:
    """Spans received so far, from any number of export calls."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def receive(self, request: otlp.ExportTraceServiceRequest) -> None:
        received = [
            _received(span, resource)
            for resource_spans in request.resource_spans
            for resource in (_attributes(resource_spans.resource.attributes),)
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.spans.extend(received)

    def wait_for(
        self,
        count: int,
        name: str | None,
        where: Callable[[ReceivedSpan], bool] | None = None,
        timeout: float = 15.0,
    ) -> list[ReceivedSpan]:
        """The spans called `name` (any name: None) that `where` accepts, once at least `count`
        of them have arrived or `timeout` has passed."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [
                    s
                    for s in self.spans
                    if (name is None or s.name == name) and (where is None or where(s))
                ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def _received(span: Any, resource: dict[str, Any]) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        trace_state=span.trace_state,
        kind=span.kind,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        attributes=_attributes(span.attributes),
        links=tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links),
        service_name=str(resource.get("service.name", "")),
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        out[pair.key] = getattr(value, kind) if kind is not None else None
    return out


@contextmanager
def http_collector() -> Iterator[tuple[Collector, str]]:
    """An OTLP/HTTP (protobuf) collector on 127.0.0.1; yields it and its endpoint URL."""
    collector = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            collector.receive(otlp.ExportTraceServiceRequest.FromString(body))
            answer = otlp.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _TraceService(otlp_grpc.TraceServiceServicer):
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def Export(
        self, request: otlp.ExportTraceServiceRequest, context: Any
    ) -> otlp.ExportTraceServiceResponse:
        self.collector.receive(request)
        return otlp.ExportTraceServiceResponse()


@contextmanager
def grpc_collector() -> Iterator[tuple[Collector, str]]:
    """An OTLP/gRPC collector on 127.0.0.1; yields it and its endpoint URL."""
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    otlp_grpc.add_TraceServiceServicer_to_server(_TraceService(collector), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield collector, f"http://127.0.0.1:{port}"
    finally:
        server.stop(grace=None)
