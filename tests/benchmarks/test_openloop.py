"""The open-loop load generator (benchmarks/openloop.py), run for real against a trivial server:
it holds a modest rate, and its latencies count from each request's due time, so that one stall
of the server shows in every request that fell due during it, not in one per connection."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from benchmarks.bodies import http_request
from benchmarks.harness.servers import Launch, ServerProcess, free_port, serve
from benchmarks.openloop import _chunked_end, run_open_loop

STALL_SERVER = Path(__file__).with_name("stall_server.py")


@contextmanager
def stall_server(tmp_path: Path, *options: str) -> Iterator[ServerProcess]:
    port = free_port()
    launch = Launch([sys.executable, str(STALL_SERVER), str(port), *options], port, "/ready")
    with serve(launch, log_path=tmp_path / "stall-server.log") as server:
        yield server


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "request.http"
    path.write_bytes(http_request("/infer", b'{"inputs": []}'))
    return path


def test_holds_a_modest_rate_and_answers_every_request(tmp_path: Path, request_file: Path) -> None:
    with stall_server(tmp_path) as server:
        result = run_open_loop(
            server.url, [request_file], rate=400, seconds=2, connections=8, core=None
        )
    assert result.scheduled == 800
    assert result.ok == 800
    assert result.errors == 0
    assert result.held
    assert result.sent_rate == pytest.approx(400, rel=0.02)
    # Sent on schedule, not drifting behind it: the bounds leave room for a shared machine that
    # deschedules the generator now and then (the report gives the real lag of each run).
    assert result.send_lag_ms["p50"] < 25
    assert result.send_lag_ms["max"] < 250


def test_a_stall_counts_in_every_request_due_during_it(tmp_path: Path, request_file: Path) -> None:
    """500 req/s over 8 connections; the server blocks for 200 ms once. About 100 requests fall
    due during the stall: each must show most of it, counted from its due time, while the
    8 requests in flight are all a closed loop (time from the send) would see."""
    latencies = tmp_path / "latencies.npz"
    with stall_server(tmp_path, "--stall-at", "400", "--stall-ms", "200") as server:
        result = run_open_loop(
            server.url,
            [request_file],
            rate=500,
            seconds=2,
            connections=8,
            core=None,
            latencies=latencies,
        )
    assert result.errors == 0
    arrays = np.load(latencies)
    from_due = arrays["done"] - arrays["due"]
    from_send = arrays["done"] - arrays["sent"]
    assert (from_due > 0.1).sum() >= 40
    assert (from_send > 0.1).sum() <= 8 + 2  # the requests on the wire when it stalled
    assert result.queued >= 40  # due while every connection waited on the stalled server
    assert result.latency_ms["max"] >= 190


def test_primed_connections_keep_the_servers_start_out_of_the_run(
    tmp_path: Path, request_file: Path
) -> None:
    """The server stalls 300 ms at the first request after the readiness probe: a priming
    request, answered before the schedule starts, so no request of the run waits on it, and the
    priming requests are not counted among the run's."""
    with stall_server(tmp_path, "--stall-at", "2", "--stall-ms", "300") as server:
        result = run_open_loop(
            server.url, [request_file], rate=400, seconds=1, connections=8, core=None
        )
    assert result.scheduled == result.ok == result.answered == 400
    assert result.held
    assert result.latency_ms["max"] < 150


def test_chunked_bodies_are_read_to_their_last_chunk() -> None:
    body = b"4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n"
    assert _chunked_end(body, 0) == len(body)
    assert _chunked_end(body[:-2], 0) == -1
    assert _chunked_end(b"4\r\nwi", 0) == -1
