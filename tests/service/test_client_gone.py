"""A client that disconnects while its request waits in the queue: the request is dropped from
the queue before its batch forms (nothing computes for nobody); the others are unaffected."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pytest

from model_store.schema import BatchingConfig, ModelConfig
from tests.service import models
from tests.service.helpers import ServerProcess, publish, running_server

# A long delay window: a lone request waits a whole second in the queue before its batch forms.
SLOW_WINDOW = ModelConfig(batching=BatchingConfig(max_batch_size=8, max_queue_delay_ms=1000))
COUNT = 'inductive_inference_count_total{model="add",version="1"}'


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("gone")
    store = work / "store"
    publish(store, "add", models.add_model(work), config=SLOW_WINDOW)
    with running_server(store, work, {"INDUCTIVE_MODEL_CONTROL_MODE": "none"}) as process:
        yield process


def _body(value: float) -> bytes:
    x = [value] * 4
    return orjson.dumps({"inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x},
        {"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1.0] * 4},
    ]})  # fmt: skip


def test_a_request_whose_client_left_is_dropped_from_the_queue(windowed: ServerProcess) -> None:
    before = windowed.metrics().get(COUNT, 0.0)
    host, port = windowed.url.removeprefix("http://").split(":")
    body = _body(5.0)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
        time.sleep(0.2)  # queued, its batch window still open
    time.sleep(1.5)  # the window has passed: the batch would have run by now
    assert windowed.metrics().get(COUNT, 0.0) == before, "computed a request nobody waits for"
    # A client that stays is answered as always.
    response = httpx.post(f"{windowed.url}/v2/models/add/infer", content=_body(2.0), timeout=10)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    np.testing.assert_array_equal(out["data"], [3.0] * 4)
    assert windowed.metrics()[COUNT] == before + 1
