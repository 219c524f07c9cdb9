"""Dynamic batching on the real server: concurrent requests are batched (execution count far
below request count) and every response equals one-by-one inference, ragged inputs included."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from tests.service.helpers import ServerProcess
from tests.service.models import add_reference


def _counts(server: ServerProcess, model: str) -> tuple[float, float]:
    m = server.metrics()
    labels = f'{{model="{model}",version="1"}}'
    return (
        m.get(f"inductive_inference_exec_count_total{labels}", 0.0),
        m.get(f"inductive_inference_count_total{labels}", 0.0),
    )


def _post(client: httpx.Client, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
    response = client.post(url, json=body, timeout=30)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def test_concurrent_requests_are_batched_and_exact(server: ServerProcess) -> None:
    rng = np.random.default_rng(3)
    requests = []
    for i in range(240):
        rows = 1 + i % 3
        requests.append((rng.standard_normal((rows, 4), dtype=np.float32),
                         rng.standard_normal((rows, 4), dtype=np.float32)))  # fmt: skip
    executions_before, samples_before = _counts(server, "add")

    def infer(pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        x, y = pair
        body = {"inputs": [
            {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()},
            {"name": "y", "shape": list(y.shape), "datatype": "FP32", "data": y.ravel().tolist()},
        ]}  # fmt: skip
        with httpx.Client() as client:
            doc = _post(client, f"{server.url}/v2/models/add/infer", body)
        (out,) = doc["outputs"]
        return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(infer, requests))
    for (x, y), got in zip(requests, results, strict=True):
        np.testing.assert_array_equal(got, add_reference(x, y))

    executions, samples = _counts(server, "add")
    executions -= executions_before
    samples -= samples_before
    assert samples == sum(len(x) for x, _ in requests)
    # 240 requests: with batching the model ran far fewer times than it got requests.
    assert executions < len(requests) / 2, (executions, len(requests))


def test_ragged_requests_batch_and_match_one_by_one(server: ServerProcess) -> None:
    rng = np.random.default_rng(4)
    cases = []
    for i in range(96):
        steps = 1 + (i * 7) % 11
        rows = 1 + i % 2
        x = rng.standard_normal((rows, steps, 2), dtype=np.float32)
        cases.append(x)
    executions_before, _ = _counts(server, "ragged")

    def infer(x: np.ndarray) -> np.ndarray:
        body = {"inputs": [
            {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ]}  # fmt: skip
        with httpx.Client() as client:
            doc = _post(client, f"{server.url}/v2/models/ragged/infer", body)
        (out,) = doc["outputs"]
        return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(infer, cases))
    for x, got in zip(cases, results, strict=True):
        # Alone, a request's mean is over all its steps; padding (7.0) must never leak in.
        np.testing.assert_allclose(got, x.mean(axis=1), rtol=1e-5, atol=1e-6)
    executions, _ = _counts(server, "ragged")
    assert executions - executions_before < len(cases) / 2


def test_client_lengths_with_client_padding(server: ServerProcess) -> None:
    x = np.zeros((2, 4, 2), dtype=np.float32)
    x[0, :1] = [1, 2]
    x[1, :3] = [[1, 1], [2, 2], [3, 3]]
    body = {"inputs": [
        {"name": "x", "shape": [2, 4, 2], "datatype": "FP32", "data": x.ravel().tolist()},
        {"name": "lengths", "shape": [2], "datatype": "INT64", "data": [1, 3]},
    ]}  # fmt: skip
    with httpx.Client() as client:
        doc = _post(client, f"{server.url}/v2/models/ragged/infer", body)
    assert doc["outputs"][0]["data"] == [1, 2, 2, 2]
