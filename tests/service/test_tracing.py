"""OpenTelemetry traces and the access log, on real server processes with the SDK's real
exporters: OTLP over HTTP and over gRPC to a collector the test runs (otlp_collector.py), and the
console exporter to the server's stdout. Requests come from tritonclient, HTTP and gRPC."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from model_store.schema import BatchingConfig, ModelConfig
from tests.service import models
from tests.service.grpc.clients import http_inputs, inputs
from tests.service.helpers import REPO_ROOT, ServerProcess, publish, running_server
from tests.service.otlp_collector import Collector, ReceivedSpan, grpc_collector, http_collector

pytestmark = pytest.mark.slow

CONCURRENT = 8
SERVER_KIND = 2  # OTLP's SPAN_KIND_SERVER


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Batches of up to 8 that wait up to 300 ms for company: 8 requests sent at once share one.
    store = tmp_path_factory.mktemp("store")
    config = ModelConfig(batching=BatchingConfig(max_batch_size=8, max_queue_delay_ms=300))
    publish(store, "add", models.add_model(tmp_path_factory.mktemp("models")), config=config)
    return store


def _traceparent() -> tuple[str, str, str]:
    """A fresh W3C traceparent, its trace id and its (parent) span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _arrays() -> dict[str, np.ndarray]:
    return {"x": np.ones((1, 4), np.float32), "y": np.full((1, 4), 2.0, np.float32)}


def _http_infer(server: ServerProcess, headers: dict[str, str]) -> None:
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        result = client.infer("add", http_inputs(_arrays()), headers=headers)
        np.testing.assert_allclose(result.as_numpy("sum"), np.full((1, 4), 3.0))
    finally:
        client.close()


def _grpc_infer(server: ServerProcess, headers: dict[str, str]) -> None:
    client = triton_grpc.InferenceServerClient(server.grpc_address)
    try:
        result = client.infer("add", inputs(_arrays()), headers=headers)
        np.testing.assert_allclose(result.as_numpy("sum"), np.full((1, 4), 3.0))
    finally:
        client.close()


def _access_lines(path: Path, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        lines = [json.loads(line) for line in text.splitlines() if line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _concurrent(send: Any, server: ServerProcess) -> dict[str, tuple[str, str]]:
    """CONCURRENT requests at once, each with its own traceparent and request id; returns
    request id → (trace id, parent span id)."""
    sent = {}
    headers = []
    for i in range(CONCURRENT):
        traceparent, trace_id, span_id = _traceparent()
        rid = f"req-{i}-{secrets.token_hex(4)}"
        sent[rid] = (trace_id, span_id)
        headers.append({"traceparent": traceparent, "tracestate": "vendor=1", "x-request-id": rid})
    with ThreadPoolExecutor(CONCURRENT) as pool:
        list(pool.map(lambda h: send(server, h), headers))
    return sent


def _check_request_spans(
    collector: Collector, sent: dict[str, tuple[str, str]], protocol: str
) -> dict[str, ReceivedSpan]:
    """Every request's span continues its traceparent, with what the issue lists on it; its
    queue and encode spans are its children. Returns request id → its span."""
    infer = collector.wait_for(
        len(sent), "infer", lambda s: s.attributes.get("inference.request_id") in sent
    )
    by_rid = {str(s.attributes.get("inference.request_id")): s for s in infer}
    ours = {by_rid[rid].span_id for rid in sent}
    children = collector.wait_for(
        2 * len(sent), None, lambda s: s.parent_span_id in ours and s.name in ("queue", "encode")
    )
    for rid, (trace_id, parent_id) in sent.items():
        span = by_rid[rid]
        assert span.trace_id == trace_id
        assert span.parent_span_id == parent_id
        assert span.trace_state == "vendor=1"  # the client's tracestate, carried on
        assert span.kind == SERVER_KIND
        assert span.service_name == "inductive-test"
        attributes = span.attributes
        assert attributes["inference.model"] == "add"
        assert attributes["inference.model_version"] == 1
        assert attributes["inference.protocol"] == protocol
        assert attributes["inference.status"] == 200
        assert attributes["inference.request_bytes"] > 0
        assert attributes["inference.response_bytes"] > 0
        assert attributes["inference.batch_size"] >= 1
        names = sorted(c.name for c in children if c.parent_span_id == span.span_id)
        assert names == ["encode", "queue"], names
        for child in children:
            if child.parent_span_id == span.span_id:
                assert child.trace_id == trace_id
                assert span.start_ns <= child.start_ns <= child.end_ns <= span.end_ns
    return by_rid


def _check_batches(collector: Collector, spans: dict[str, ReceivedSpan]) -> None:
    """Every request span is linked from the batch it ran in, and some batch served several."""
    wanted = {(s.trace_id, s.span_id) for s in spans.values()}
    deadline = time.monotonic() + 10
    while True:
        batches = collector.wait_for(1, "batch")
        linked = {link for b in batches for link in b.links}
        if wanted <= linked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert wanted <= linked, "a request span no batch span links to"
    shared = [b for b in batches if len(wanted & set(b.links)) > 1]
    assert shared, "no batch served more than one request"
    for batch in shared:
        served = [s for s in spans.values() if (s.trace_id, s.span_id) in batch.links]
        assert batch.attributes["inference.batch_requests"] == len(batch.links)
        assert batch.attributes["inference.batch_size"] == len(batch.links)  # 1 sample each
        # A child of one request it served, so that a parent-based sampler keeps it.
        assert (batch.trace_id, batch.parent_span_id) in {(s.trace_id, s.span_id) for s in served}
        for span in served:
            assert span.attributes["inference.batch_size"] == len(batch.links)


def _check_access_log(
    lines: list[dict[str, Any]], sent: dict[str, tuple[str, str]], protocol: str
) -> None:
    by_rid = {line["request_id"]: line for line in lines}
    for rid, (trace_id, _) in sent.items():
        line = by_rid[rid]
        assert list(line) == [
            "time", "request_id", "trace_id", "client", "protocol", "model", "version",
            "status", "bytes_in", "bytes_out", "queue_ms", "compute_ms", "total_ms",
            "batch_size",
        ]  # fmt: skip
        assert line["trace_id"] == trace_id
        assert line["protocol"] == protocol
        assert line["client"].startswith("127.0.0.1:")
        assert (line["model"], line["version"], line["status"]) == ("add", 1, 200)
        assert line["bytes_in"] > 0
        assert line["bytes_out"] > 0
        assert 0 <= line["queue_ms"] <= line["total_ms"]
        assert 0 <= line["compute_ms"] <= line["total_ms"]
        assert line["batch_size"] >= 1
    assert max(by_rid[rid]["batch_size"] for rid in sent) > 1


def _otel_env(endpoint: str, protocol: str, access_log: Path) -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "inductive-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "INDUCTIVE_ACCESS_LOG": "true",
        "INDUCTIVE_ACCESS_LOG_PATH": str(access_log),
        "INDUCTIVE_MODEL_CONTROL_MODE": "none",
    }


@pytest.fixture(scope="module")
def otlp_http_server(
    store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Collector, Path]]:
    log_dir = tmp_path_factory.mktemp("otlp-http")
    access_log = log_dir / "access.log"
    with (
        http_collector() as (collector, endpoint),
        running_server(store, log_dir, _otel_env(endpoint, "http/protobuf", access_log)) as server,
    ):
        yield server, collector, access_log


@pytest.fixture(scope="module")
def otlp_grpc_server(
    store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Collector, Path]]:
    log_dir = tmp_path_factory.mktemp("otlp-grpc")
    access_log = log_dir / "access.log"
    with (
        grpc_collector() as (collector, endpoint),
        running_server(store, log_dir, _otel_env(endpoint, "grpc", access_log)) as server,
    ):
        yield server, collector, access_log


def test_http_traceparent_continues_its_trace_over_otlp_http(
    otlp_http_server: tuple[ServerProcess, Collector, Path],
) -> None:
    server, collector, access_log = otlp_http_server
    sent = _concurrent(_http_infer, server)
    spans = _check_request_spans(collector, sent, "http")
    _check_batches(collector, spans)
    _check_access_log(_access_lines(access_log, len(sent)), sent, "http")


def test_grpc_traceparent_continues_its_trace_over_otlp_grpc(
    otlp_grpc_server: tuple[ServerProcess, Collector, Path],
) -> None:
    server, collector, access_log = otlp_grpc_server
    sent = _concurrent(_grpc_infer, server)
    spans = _check_request_spans(collector, sent, "grpc")
    _check_batches(collector, spans)
    _check_access_log(_access_lines(access_log, len(sent)), sent, "grpc")


def test_a_request_without_traceparent_starts_a_trace_and_gets_a_request_id(
    otlp_http_server: tuple[ServerProcess, Collector, Path],
) -> None:
    server, collector, access_log = otlp_http_server
    body = {
        "inputs": [
            {"name": name, "shape": [1, 4], "datatype": "FP32", "data": array.ravel().tolist()}
            for name, array in _arrays().items()
        ]
    }
    response = httpx.post(f"{server.url}/v2/models/add/infer", json=body, timeout=30)
    assert response.status_code == 200
    rid = response.headers["x-request-id"]  # made up by the server, for the client to quote
    assert len(rid) == 16
    lines = _access_lines(access_log, 1)
    deadline = time.monotonic() + 10
    while rid not in {x["request_id"] for x in lines} and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = _access_lines(access_log, 1)
    (line,) = [x for x in lines if x["request_id"] == rid]
    root = collector.wait_for(1, "infer", lambda s: s.attributes.get("inference.request_id") == rid)
    assert len(root) == 1
    assert root[0].parent_span_id == ""
    assert root[0].trace_id == line["trace_id"]


def test_a_refused_request_is_traced_and_logged_with_its_status(
    otlp_http_server: tuple[ServerProcess, Collector, Path],
) -> None:
    server, collector, access_log = otlp_http_server
    traceparent, trace_id, _ = _traceparent()
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        with pytest.raises(Exception, match="unknown model"):
            client.infer("nope", http_inputs(_arrays()), headers={"traceparent": traceparent})
    finally:
        client.close()
    deadline = time.monotonic() + 10
    while True:
        lines = [x for x in _access_lines(access_log, 1) if x["trace_id"] == trace_id]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 1
    line = lines[0]
    assert (line["model"], line["version"], line["status"]) == ("nope", None, 404)
    assert (line["queue_ms"], line["compute_ms"], line["batch_size"]) == (None, None, None)
    spans = collector.wait_for(1, "infer", lambda s: s.trace_id == trace_id)
    assert len(spans) == 1
    assert spans[0].attributes["inference.status"] == 404
    assert spans[0].attributes["http.response.status_code"] == 404


def _console_spans(log: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (indented JSON objects) among the log lines."""
    decoder = json.JSONDecoder()
    spans = []
    index = log.find('{\n    "name"')
    while index != -1:
        span, end = decoder.raw_decode(log, index)
        spans.append(span)
        index = log.find('{\n    "name"', end)
    return spans


def test_the_console_exporter_prints_the_spans(
    store: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log_dir = tmp_path_factory.mktemp("console")
    env = {"OTEL_TRACES_EXPORTER": "console", "INDUCTIVE_MODEL_CONTROL_MODE": "none"}
    traceparent, trace_id, span_id = _traceparent()
    with running_server(store, log_dir, env) as server:
        _http_infer(server, {"traceparent": traceparent})
        server.terminate()  # the SDK exports what it buffered at exit
        spans = _console_spans(server.log())
    ours = {s["name"]: s for s in spans if s["context"]["trace_id"] == f"0x{trace_id}"}
    assert set(ours) == {"infer", "queue", "encode", "batch"}
    assert ours["infer"]["parent_id"] == f"0x{span_id}"
    assert ours["infer"]["attributes"]["inference.status"] == 200


def test_an_access_log_path_that_cannot_be_opened_stops_start_up_with_one_line(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "--port", "0"],
        cwd=REPO_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "INDUCTIVE_ACCESS_LOG": "true",
            "INDUCTIVE_ACCESS_LOG_PATH": str(tmp_path / "missing" / "access.log"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("invalid access log settings: cannot open INDUCTIVE_ACCESS_LOG_PATH")
    assert "missing" in lines[0]


def test_bad_otel_settings_stop_start_up_with_one_line() -> None:
    for env, expected in (
        ({"OTEL_TRACES_EXPORTER": "zipkin_nope"}, "no installed package provides"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "http/json",
        ),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "service", "--port", "0"],
            cwd=REPO_ROOT,
            env={"PATH": "/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("invalid OpenTelemetry settings:")
        assert expected in lines[0]


IMPORTS = """
import sys
import service.http.connection, service.http.runner, service.inference.call
import service.grpc.servicer, service.batching.batcher, service.observability.observer
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")))
"""


def test_the_request_path_imports_no_opentelemetry() -> None:
    """FastAPI imports OpenTelemetry's API for its own routes; the inference path does not."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"imported by the request path: {result.stdout}"


def test_with_tracing_off_serving_imports_no_opentelemetry(
    store: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A server with neither tracing nor the access log (the default) and one with the access
    log only, serving HTTP and gRPC requests that carry a traceparent: every import the process
    makes is written to its log (PYTHONPROFILEIMPORTTIME), and none made while serving is
    OpenTelemetry's."""
    for extra in ({}, {"INDUCTIVE_ACCESS_LOG": "true"}):
        log_dir = tmp_path_factory.mktemp("off")
        env = {"PYTHONPROFILEIMPORTTIME": "1", "INDUCTIVE_MODEL_CONTROL_MODE": "none", **extra}
        with running_server(store, log_dir, env) as server:
            _http_infer(server, {"traceparent": _traceparent()[0]})  # first-request imports
            _grpc_infer(server, {"traceparent": _traceparent()[0]})
            ready = len(server.log())
            for _ in range(3):
                _http_infer(server, {"traceparent": _traceparent()[0]})
                _grpc_infer(server, {"traceparent": _traceparent()[0]})
            server.terminate()
            log = server.log()
        imported = [line for line in log.splitlines() if line.startswith("import time:")]
        assert any(line.endswith("service.inference.call") for line in imported)
        assert any(line.endswith("service.observability.observer") for line in imported)
        serving = [line for line in log[ready:].splitlines() if "opentelemetry" in line]
        assert not serving, serving
        first = [line for line in log[:ready].splitlines() if "opentelemetry.sdk" in line]
        assert not first, first  # the SDK is never loaded at all
