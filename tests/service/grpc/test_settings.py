"""The gRPC door's settings: the port (or off) from the environment and the flag, and the grpcio
options they become."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.__main__ import parse_args
from service.grpc.server import server_options
from service.settings import Settings


@pytest.mark.parametrize(
    ("value", "port"), [("8001", 8001), ("0", 0), ("off", None), (" OFF ", None)]
)
def test_the_port_comes_from_the_environment_or_is_off(
    monkeypatch: pytest.MonkeyPatch, value: str, port: int | None
) -> None:
    monkeypatch.setenv("INDUCTIVE_GRPC_PORT", value)
    assert Settings().grpc_port == port


def test_the_flag_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDUCTIVE_GRPC_PORT", "off")
    assert Settings(**parse_args(["--grpc-port", "9001"])).grpc_port == 9001
    assert Settings(**parse_args(["--grpc-port", "off"])).grpc_port is None
    assert Settings().grpc_port is None


@pytest.mark.parametrize("value", ["on", "-1", "70000", "80o1"])
def test_a_bad_port_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("INDUCTIVE_GRPC_PORT", value)
    with pytest.raises(ValidationError, match="grpc_port"):
        Settings()


def test_settings_become_grpcio_options() -> None:
    options = dict(server_options(Settings(max_body_bytes=2048, grpc_keepalive_time_s=30)))
    assert options["grpc.max_receive_message_length"] == 2048
    assert options["grpc.so_reuseport"] == 0  # a taken port fails the start
    assert options["grpc.keepalive_time_ms"] == 30_000
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] == 10_000
    assert "grpc.max_connection_age_ms" not in options
    aged = dict(server_options(Settings(grpc_max_connection_age_s=300)))
    assert aged["grpc.max_connection_age_ms"] == 300_000
    assert aged["grpc.max_connection_age_grace_ms"] == 30_000
