"""The pure parts of tracing and the access log: which exporters the OTEL_* variables ask for,
the trace id of a traceparent, the client address shown, and sampling's extremes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.observability.access_log import AccessLog, LineWriter, _address, _ms, trace_id_of
from service.observability.tracing import TracingConfigError, exporter_names


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_grpc"]),  # the Python SDK's default
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            ["otlp_proto_http"],
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",  # the signal's own wins
            },
            ["otlp_proto_grpc"],
        ),
        ({"OTEL_TRACES_EXPORTER": "console, otlp_proto_http"}, ["console", "otlp_proto_http"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_exporter_names(env: dict[str, str], names: list[str]) -> None:
    assert exporter_names(env) == names


def test_an_unknown_otlp_protocol_is_refused() -> None:
    with pytest.raises(TracingConfigError, match="http/json"):
        exporter_names({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("traceparent", "trace_id"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", TRACE),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),  # invalid per W3C
        ("00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01", None),
        ("garbage", None),
        (None, None),
    ],
)  # fmt: skip
def test_trace_id_of(traceparent: str | None, trace_id: str | None) -> None:
    assert trace_id_of(traceparent) == trace_id


def test_client_addresses() -> None:
    assert _address(("10.0.0.7", 5123)) == "10.0.0.7:5123"
    assert _address(("::1", 5123)) == "[::1]:5123"
    assert _address("ipv4:10.0.0.7:5123") == "10.0.0.7:5123"
    assert _address("ipv6:[::1]:5123") == "[::1]:5123"
    assert _address(None) is None


def test_sampling_extremes() -> None:
    writer = LineWriter(2)  # nothing is written to it
    try:
        assert all(AccessLog(writer, 1.0).sampled() for _ in range(1000))
        assert not any(AccessLog(writer, 0.0).sampled() for _ in range(1000))
        half = sum(AccessLog(writer, 0.5).sampled() for _ in range(10000))
        assert 4000 < half < 6000
    finally:
        writer.close()


def test_line_times_match_datetime_to_the_millisecond() -> None:
    log = AccessLog(LineWriter(2), 1.0)
    try:
        for unix in (1764583200.0, 1764583200.1234, 1764583200.9999, 1764583201.5, 1.0):
            expected = datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds")
            assert log._time(unix) == expected.replace("+00:00", "Z")
    finally:
        log.close()


def test_milliseconds_keep_three_decimals() -> None:
    assert _ms(0.0012041) == 1.204
    assert _ms(1.5) == 1500.0
    assert _ms(0.0) == 0.0
