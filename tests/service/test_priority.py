"""Triton's `priority` on the real server: a request with a level overtakes the queued requests
without one, over HTTP and gRPC (tritonclient's `priority=`); a bad level is a 400."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from model_store.schema import BatchingConfig, ModelConfig
from tests.service import models
from tests.service.grpc.clients import raw_status, stub, typed_request
from tests.service.helpers import ServerProcess, publish, running_server

WIDTH = 1024
SAMPLES = 64
LABELS = '{model="slow",version="1"}'


def _metric(server: ServerProcess, name: str) -> float:
    return server.metrics().get(name + LABELS, 0.0)


def _wait(check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def test_requests_with_a_priority_overtake_the_queue(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # Every request is a full batch (64 samples, a fraction of a second each): the order
    # batches run in is the order requests leave the queue.
    config = ModelConfig(batching=BatchingConfig(max_batch_size=SAMPLES, max_queue_delay_ms=0))
    publish(store, "slow", models.slow_model(tmp_path, width=WIDTH, depth=96), config=config)
    with running_server(store, tmp_path) as server:
        http = httpclient.InferenceServerClient(
            server.url.removeprefix("http://"), concurrency=8, network_timeout=120
        )
        grpc = grpcclient.InferenceServerClient(server.grpc_address)
        x = np.ones((SAMPLES, WIDTH), np.float32)
        done: dict[str, float] = {}
        lock = threading.Lock()

        def call(label: str, priority: int = 0, door: str = "http") -> None:
            if door == "http":
                tensor = httpclient.InferInput("x", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x, binary_data=True)
                http.infer("slow", [tensor], priority=priority)
            else:
                tensor = grpcclient.InferInput("x", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x)
                grpc.infer("slow", [tensor], priority=priority, client_timeout=120)
            with lock:
                done[label] = time.monotonic()

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, "hog")]
            _wait(lambda: _metric(server, "inductive_inference_queue_duration_seconds_count") >= 1)
            futures.extend(pool.submit(call, f"plain-{i}") for i in range(4))
            _wait(lambda: _metric(server, "inductive_inference_queue_depth") >= 4)
            futures.append(pool.submit(call, "urgent-http", 1, "http"))
            futures.append(pool.submit(call, "urgent-grpc", 1, "grpc"))
            for future in futures:
                future.result()
        plain = [done[f"plain-{i}"] for i in range(4)]
        # Each queued plain request still waited: the urgent ones ran before all of them (the
        # plain requests were queued first, the batch in flight was the hog's).
        assert max(done["urgent-http"], done["urgent-grpc"]) < min(plain), done


def test_a_bad_priority_is_refused_with_a_clear_400(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path))
    with running_server(store, tmp_path) as server:
        inputs = [
            {"name": n, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]} for n in "xy"
        ]
        for bad in (-1, "high", 1.5, True):
            body = {"inputs": inputs, "parameters": {"priority": bad}}
            response = httpx.post(f"{server.url}/v2/models/add/infer", json=body, timeout=10)
            assert response.status_code == 400, bad
            assert "parameter 'priority' must be an integer ≥ 0" in response.json()["error"]
        good = {"inputs": inputs, "parameters": {"priority": 3}}
        answer = httpx.post(f"{server.url}/v2/models/add/infer", json=good, timeout=10)
        assert answer.status_code == 200
        assert "priority" not in answer.json().get("parameters", {})
        # gRPC: a level that is not an unsigned integer parameter.
        arrays = {n: np.ones((1, 4), np.float32) for n in "xy"}
        channel, infer_stub = stub(server)
        with channel:
            request = typed_request("add", arrays)
            request.parameters["priority"].string_param = "high"
            code, details = raw_status(lambda: infer_stub.ModelInfer(request, timeout=10))
            assert code == "INVALID_ARGUMENT"
            assert "parameter 'priority' must be a uint64_param" in details
            request.parameters["priority"].uint64_param = 2
            assert infer_stub.ModelInfer(request, timeout=10).model_version == "1"
