"""API keys for inference, CORS only when configured, overload refused fast with Retry-After,
JSON logs carrying the request id and never a token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from model_store.schema import BatchingConfig, ModelConfig
from tests.service import models
from tests.service.helpers import ServerProcess, publish, running_server

KEYS = ("key-one-9f8e", "key-two-1a2b")
ORIGIN = "https://ui.example"
BODY = {"inputs": [{"name": n, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
                   for n in ("x", "y")]}  # fmt: skip


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("guarded")
    store = work / "store"
    publish(store, "add", models.add_model(work))
    publish(store, "faulty", models.faulty_model(work))
    slow = ModelConfig(batching=BatchingConfig(max_batch_size=4, max_queue_delay_ms=0,
                                               max_queue_size=2))  # fmt: skip
    publish(store, "slow", models.slow_model(work, width=512, depth=512), config=slow)
    env = {
        "INDUCTIVE_API_KEYS": ",".join(KEYS),
        "INDUCTIVE_CORS_ORIGINS": ORIGIN,
        "INDUCTIVE_LOG_FORMAT": "json",
        "INDUCTIVE_MODEL_CONTROL_MODE": "none",
    }
    with running_server(store, work, env) as server:
        yield server


def _infer(server: ServerProcess, token: str | None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{server.url}/v2/models/add/infer", json=BODY, headers=headers)


def test_api_keys_guard_inference(guarded: ServerProcess) -> None:
    assert _infer(guarded, None).status_code == 401
    wrong = _infer(guarded, "key-three")
    assert wrong.status_code == 403
    assert "key-three" not in wrong.text
    for key in KEYS:
        assert _infer(guarded, key).status_code == 200
    # Health and metadata stay open for probes.
    assert httpx.get(f"{guarded.url}/v2/health/ready").status_code == 200


def test_cors_only_for_the_configured_origin(guarded: ServerProcess, server: ServerProcess) -> None:
    allowed = _infer(guarded, KEYS[0], Origin=ORIGIN)
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = _infer(guarded, KEYS[0], Origin="https://evil.example")
    assert "access-control-allow-origin" not in other.headers
    preflight = httpx.options(
        f"{guarded.url}/v2/models/add/infer",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    # The default server (no INDUCTIVE_CORS_ORIGINS) sends no CORS headers at all.
    default = httpx.post(f"{server.url}/v2/models/add/infer", json=BODY, headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in default.headers


def test_overload_is_refused_fast_with_retry_after(guarded: ServerProcess) -> None:
    body = {"inputs": [{"name": "x", "shape": [4, 512], "datatype": "FP32", "data": [0.0] * 2048}]}
    headers = {"Authorization": f"Bearer {KEYS[0]}"}

    def call(_: int) -> httpx.Response:
        return httpx.post(f"{guarded.url}/v2/models/slow/infer", json=body, headers=headers,
                          timeout=60)  # fmt: skip

    with ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(call, range(48)))
    refused = [r for r in responses if r.status_code == 503]
    assert refused, [r.status_code for r in responses]
    assert all(r.status_code in (200, 503) for r in responses)
    assert refused[0].headers["retry-after"] == "1"
    assert "overloaded" in refused[0].json()["error"]


def test_json_logs_carry_request_id_and_no_token(guarded: ServerProcess) -> None:
    body = {"inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4},
        {"name": "idx", "shape": [1, 1], "datatype": "INT64", "data": [9]},
    ]}  # fmt: skip
    response = httpx.post(
        f"{guarded.url}/v2/models/faulty/infer",
        json=body,
        headers={"Authorization": f"Bearer {KEYS[1]}", "X-Request-Id": "trace-42"},
    )
    assert response.status_code == 400  # the model refused this input (logged at info)
    assert response.headers["x-request-id"] == "trace-42"
    # Every line is JSON, ONNX Runtime's own error output included (it is silenced).
    lines = [json.loads(line) for line in guarded.log().splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    failures = [line for line in lines if line.get("request_id") == "trace-42"]
    assert failures
    assert "faulty" in failures[0]["message"]
    log_text = guarded.log()
    for key in KEYS:
        assert key not in log_text
