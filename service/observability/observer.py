"""The inference front end's one hook for traces and the access log.

`InferCall` (service/inference/call.py) calls `begin` when a request starts and `end` once its
response is written or its client has gone; both only when an observer exists, which is when
tracing or the access log is on (`build_observer`). Off, neither is imported on the hot path
beyond this module's name.
"""

from __future__ import annotations

import os
import sys
import time
from random import getrandbits
from typing import TYPE_CHECKING

from service.observability import tracing
from service.observability.access_log import (
    AccessLog,
    AccessLogConfigError,
    LineWriter,
    trace_id_of,
)
from service.observability.tracing import Tracing, start_tracing
from service.settings import Settings

if TYPE_CHECKING:
    from service.inference.call import InferCall


class Observer:
    def __init__(self, tracing: Tracing | None, access_log: AccessLog | None) -> None:
        self.tracing = tracing
        self.access_log = access_log

    def begin(self, call: InferCall, traceparent: str | None, tracestate: str | None) -> None:
        """A request starts: its span opens and, if it is to be logged, it gets a request id
        (a client's X-Request-ID is kept; the door echoes a new one in its response)."""
        log = self.access_log
        if log is not None and log.sampled():
            call.logged = True
            if call.rid is None:
                call.rid = f"{getrandbits(64):016x}"
        if self.tracing is not None:
            span = call.span = self.tracing.start_request(call, traceparent, tracestate)
            context = span.get_span_context()
            if context.is_valid:
                call.trace_id = f"{context.trace_id:032x}"
        elif call.logged:
            call.trace_id = trace_id_of(traceparent)

    def end(self, call: InferCall) -> None:
        """The response is written (or the client is gone): the span ends, the line is
        logged."""
        ended = time.perf_counter()
        if call.span is not None and self.tracing is not None:
            self.tracing.end_request(call, call.span, ended)
        if call.logged and self.access_log is not None:
            self.access_log.record(call, call.trace_id, ended)

    def close(self) -> None:
        """At shutdown: the buffered lines are written and the buffered spans exported."""
        if self.access_log is not None:
            self.access_log.close()
        if self.tracing is not None:
            tracing.batch_tracer = None
            self.tracing.shutdown()


def build_observer(
    settings: Settings, env: dict[str, str] | os._Environ[str] = os.environ
) -> Observer | None:
    """The observer the settings and OTEL_* variables ask for; None when both are off. Raises
    TracingConfigError or AccessLogConfigError (one line each) for what cannot be done."""
    traces = start_tracing(env)
    access_log = None
    if settings.access_log:
        path = settings.access_log_path
        try:
            fd = (
                sys.stdout.fileno()
                if path == "-"
                else os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            )
        except OSError as exc:
            raise AccessLogConfigError(
                f"cannot open INDUCTIVE_ACCESS_LOG_PATH {path!r}: {exc.strerror}"
            ) from None
        access_log = AccessLog(LineWriter(fd), settings.access_log_sample_rate)
    if traces is None and access_log is None:
        return None
    tracing.batch_tracer = traces
    return Observer(traces, access_log)
