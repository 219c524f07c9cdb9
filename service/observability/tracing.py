"""OpenTelemetry traces of inference requests, configured only by the SDK's standard variables.

Tracing is on when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `otlp_proto_grpc`,
`otlp_proto_http`, `console`, or any other the installed packages register) and
`OTEL_SDK_DISABLED` is not true. `otlp` speaks `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL` (`grpc`,
the Python SDK's default, or `http/protobuf`). Everything else — endpoint, headers, service name,
resource attributes, sampler, batch processor sizes — the SDK reads itself from its OTEL_*
variables. With tracing off this module imports nothing of OpenTelemetry, and neither does the
request path (tests/service/test_tracing.py checks it on a running server).

Each inference request gets:
- a SERVER span `infer` continuing the client's W3C `traceparent`/`tracestate` (HTTP header or
  gRPC metadata), with the model, version, protocol, status, bytes in and out;
- child spans `queue` (enqueued until its batch started) and `encode` (writing the response);
- and the batch it ran in gets one span `batch`, linking to the span of every request it served.
  It is a child of the first traced request of the batch, so that a parent-based sampler keeps
  it whenever that request is kept (a root span would be sampled on its own, and a sampled
  request could point to a batch nobody recorded).

Spans are made with explicit timestamps from the `time.perf_counter()` stamps the front end and
the batcher take anyway: no context variables, no `with` blocks on the hot path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from service.batching.run import BatchRun

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

    from service.inference.call import InferCall


class BatchTracer(Protocol):
    def record_batch(self, label: str, run: BatchRun, traces: Sequence[object | None]) -> None:
        """The span of one batch, linked to the spans of its requests (None: not traced)."""


# Read by every batcher when a batch comes back; set only while tracing is on.
batch_tracer: BatchTracer | None = None

_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


class TracingConfigError(Exception):
    """OTEL_* variables that cannot be honoured; start-up stops with this one-line message."""


def exporter_names(env: dict[str, str] | os._Environ[str]) -> list[str]:
    """The exporters OTEL_TRACES_EXPORTER asks for (empty: tracing is off), `otlp` resolved to
    the protocol's entry point as the SDK's own auto-configuration does."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names or names == ["none"]:
        return []
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    ) or "grpc"
    resolved = []
    for name in names:
        if name == "otlp":
            if protocol.strip() not in _BY_PROTOCOL:
                raise TracingConfigError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} is not one of "
                    f"{', '.join(sorted(_BY_PROTOCOL))}"
                )
            name = _BY_PROTOCOL[protocol.strip()]
        resolved.append(name)
    return resolved


def _exporter(name: str) -> SpanExporter:
    found = entry_points(group=_EXPORTER_GROUP, name=name)
    if not found:
        known = sorted(e.name for e in entry_points(group=_EXPORTER_GROUP))
        hint = "" if known else " (is the OTLP exporter installed? pip install 'inductive[otel]')"
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides; "
            f"known: {', '.join(known) or 'none'}{hint}"
        )
    exporter_class: Any = next(iter(found)).load()
    exporter: SpanExporter = exporter_class()
    return exporter


def start_tracing(env: dict[str, str] | os._Environ[str] = os.environ) -> Tracing | None:
    """A Tracing with the exporters the environment asks for, or None when tracing is off."""
    names = exporter_names(env)
    if not names:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise TracingConfigError(
            "OTEL_TRACES_EXPORTER is set but the OpenTelemetry SDK is not installed: "
            "pip install 'inductive[otel]'"
        ) from None
    # The sampler (OTEL_TRACES_SAMPLER[_ARG]), the resource (OTEL_SERVICE_NAME,
    # OTEL_RESOURCE_ATTRIBUTES) and the processors' sizes (OTEL_BSP_*) come from the SDK's own
    # reading of the environment.
    provider = TracerProvider(resource=Resource.create())
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return Tracing(provider)


class Tracing:
    """Spans of requests and batches on `provider`; event-loop thread only."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.context import Context
        from opentelemetry.trace import Link, SpanKind, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self._tracer = provider.get_tracer("inductive.service")
        self._propagator = TraceContextTextMapPropagator()
        self._link = Link
        self._server = SpanKind.SERVER
        self._in_context = set_span_in_context
        # A request without a traceparent starts a trace. Given this empty context, the SDK
        # does not look up the task's current one (three context-variable reads per span).
        self._root = Context()
        # perf_counter seconds → Unix nanoseconds, for the spans' explicit timestamps.
        self._epoch_ns = time.time_ns() - time.perf_counter_ns()

    def _ns(self, stamp: float) -> int:
        return self._epoch_ns + int(stamp * 1e9)

    # --- requests ------------------------------------------------------------------------

    def start_request(
        self, call: InferCall, traceparent: str | None, tracestate: str | None
    ) -> Span:
        """The request's span, continuing the client's trace when it sent a valid one."""
        parent = self._root
        if traceparent is not None:
            carrier = {"traceparent": traceparent}
            if tracestate is not None:
                carrier["tracestate"] = tracestate
            parent = self._propagator.extract(carrier)
        attributes: dict[str, str] = {
            "inference.model": call.name[:200],
            "inference.protocol": call.protocol,
        }
        if call.rid is not None:
            attributes["inference.request_id"] = call.rid
        return self._tracer.start_span(
            "infer",
            context=parent,
            kind=self._server,
            attributes=attributes,
            start_time=self._ns(call.started),
        )

    def end_request(self, call: InferCall, span: Span, ended: float) -> None:
        """Ends the request's span at `ended`, with its queue and encode spans."""
        if not span.is_recording():  # not sampled: nothing of it is exported
            span.end(end_time=self._ns(ended))
            return
        status = call.status
        attributes: dict[str, int] = {
            "inference.status": status,
            "inference.request_bytes": call.bytes_in,
            "inference.response_bytes": call.bytes_out,
        }
        if call.protocol == "http":
            attributes["http.response.status_code"] = status
        served = call.served
        if served is not None:
            attributes["inference.model_version"] = served.version
        ticket = call.ticket
        run = None if ticket is None else ticket.run
        if run is not None:
            attributes["inference.batch_size"] = run.samples
        span.set_attributes(attributes)  # one lock, where each set_attribute takes its own
        if status >= 500:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, f"status {status}"))
        inside = self._in_context(span)
        if run is not None and call.queued_at is not None:
            queued = self._tracer.start_span(
                "queue", context=inside, start_time=self._ns(call.queued_at)
            )
            queued.end(end_time=self._ns(run.started))
        if call.encode_started is not None and call.answered_at is not None:
            encoding = self._tracer.start_span(
                "encode", context=inside, start_time=self._ns(call.encode_started)
            )
            encoding.end(end_time=self._ns(call.answered_at))
        span.end(end_time=self._ns(ended))

    # --- batches -------------------------------------------------------------------------

    def record_batch(self, label: str, run: BatchRun, traces: Sequence[object | None]) -> None:
        spans: list[Any] = [s for s in traces if s is not None]
        recording = [s for s in spans if s.is_recording()]
        if not recording:  # none of its requests is sampled: nobody would look for it
            return
        links = [self._link(s.get_span_context()) for s in spans]
        name, _, version = label.rpartition(":")
        batch = self._tracer.start_span(
            "batch",
            context=self._in_context(recording[0]),
            links=links,
            attributes={
                "inference.model": name,
                "inference.model_version": version,
                "inference.batch_size": run.samples,
                "inference.batch_requests": run.requests,
            },
            start_time=self._ns(run.started),
        )
        batch.end(end_time=self._ns(run.ended))
        run.span = batch

    def shutdown(self) -> None:
        """Exports what is still buffered (the SDK would too, at exit)."""
        self.provider.shutdown()
