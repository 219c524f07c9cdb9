"""The gRPC door on servers of their own: gRPC and HTTP requests in one batch, API keys and the
repository RPCs behind the admin token, overload and deadlines, the drain on SIGTERM, and the
port setting (off, or taken)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton

from model_store.schema import BatchingConfig, ModelConfig
from service.grpc.protos import health_pb2
from tests.e2e import tiny
from tests.service import models
from tests.service.grpc.clients import client, http_client, http_inputs, inputs, status
from tests.service.helpers import publish, running_server

X = np.arange(4, dtype=np.float32).reshape(1, 4)


def test_grpc_and_http_requests_share_a_batch(tmp_path: Path) -> None:
    """4 gRPC and 4 HTTP requests of one sample, sent together to a version whose batch waits
    (up to 5 s) for 8 samples: one execution of batch size 8 answers all of them."""
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path))
    env = {"INDUCTIVE_MAX_BATCH_SIZE": "8", "INDUCTIVE_MAX_QUEUE_DELAY_MS": "5000"}
    with running_server(store, tmp_path, env) as server:
        over_grpc, over_http = client(server), http_client(server)
        start = threading.Barrier(8)

        def send(i: int) -> np.ndarray:
            x = X + i
            start.wait()
            if i % 2:
                return over_grpc.infer("add", inputs({"x": x, "y": x})).as_numpy("sum")
            with httpx.Client() as http:  # tritonclient.http is not thread-safe
                body = {"inputs": [{"name": n, "shape": [1, 4], "datatype": "FP32",
                                    "data": x.ravel().tolist()} for n in ("x", "y")]}  # fmt: skip
                doc = http.post(f"{server.url}/v2/models/add/infer", json=body).json()
            return np.asarray(doc["outputs"][0]["data"], np.float32).reshape(1, 4)

        began = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(8)))
        assert time.monotonic() - began < 4.5, "the batch waited for its window, not for 8"
        for i, answer in enumerate(answers):
            np.testing.assert_array_equal(answer, 2 * (X + i))
        (stats,) = over_http.get_inference_statistics("add")["model_stats"]
        assert stats["execution_count"] == 1
        assert [(b["batch_size"], b["compute_infer"]["count"]) for b in stats["batch_stats"]] == [
            (8, 1)
        ]
        samples = server.metrics()
        for protocol in ("grpc", "http"):
            key = (
                'inductive_inference_requests_total{model="add",outcome="success",'
                f'protocol="{protocol}",version="1"}}'
            )
            assert samples[key] == 4, protocol


def test_api_keys_and_the_repository_over_grpc(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for version in (1, 2):  # the end-to-end tiny model: each version adds 100 × its number
        publish(store, tiny.MODEL, tiny.artifact(tmp_path, version), config=tiny.CONFIG)
    env = {
        "INDUCTIVE_API_KEYS": "key-a,key-b",
        "INDUCTIVE_ADMIN_TOKEN": "admin-secret",
        "INDUCTIVE_MODEL_CONTROL_MODE": "explicit",
        "INDUCTIVE_MODELS": "add",  # explicit mode loads only what is listed
    }
    with running_server(store, tmp_path, env) as server:
        c = client(server)
        arrays = {"x": X, "y": X}
        # Inference needs a key; health and metadata do not.
        assert c.is_server_ready()
        assert status(lambda: c.infer("add", inputs(arrays)))[0] == "UNAUTHENTICATED"
        wrong = {"authorization": "Bearer nope"}
        assert status(lambda: c.infer("add", inputs(arrays), headers=wrong))[0] == (
            "PERMISSION_DENIED"
        )
        key = {"authorization": "Bearer key-b"}
        answer = c.infer("add", inputs(arrays), headers=key)
        np.testing.assert_array_equal(answer.as_numpy("sum"), tiny.offset(2) + 2 * X)
        assert answer.get_response().model_version == "2"
        # Repository RPCs: the admin token, not an API key.
        assert status(lambda: c.get_model_repository_index())[0] == "UNAUTHENTICATED"
        assert status(lambda: c.get_model_repository_index(headers=key))[0] == ("PERMISSION_DENIED")
        admin = {"authorization": "Bearer admin-secret"}
        index = c.get_model_repository_index(headers=admin, as_json=True)["models"]
        assert {(m["name"], m["version"], m["state"]) for m in index} == {("add", "2", "READY")}
        c.unload_model("add", headers=admin)
        assert status(lambda: c.infer("add", inputs(arrays), headers=key))[0] == "NOT_FOUND"
        c.load_model("add", headers=admin)
        assert c.is_model_ready("add")
        assert status(lambda: c.load_model("nope", headers=admin))[0] == "NOT_FOUND"
        code, message = status(lambda: c.load_model("add", headers=admin, config="{}"))
        assert code == "INVALID_ARGUMENT"
        assert "['config'] are not taken" in message


@pytest.mark.slow
def test_overload_and_deadlines(tmp_path: Path) -> None:
    """While a long batch computes: a request whose deadline passes in the queue gets
    DEADLINE_EXCEEDED, as one whose `timeout` does (with the server's message); once 2 requests
    wait (INDUCTIVE_MAX_QUEUE_SIZE), the next gets RESOURCE_EXHAUSTED. Then all is served."""
    store = tmp_path / "store"
    config = ModelConfig(batching=BatchingConfig(max_batch_size=64, max_queue_delay_ms=0))
    publish(store, "slow", models.slow_model(tmp_path, width=1024, depth=768), config=config)
    with running_server(store, tmp_path, {"INDUCTIVE_MAX_QUEUE_SIZE": "2"}) as server:
        c = client(server)
        one = {"x": np.ones((1, 1024), np.float32)}
        labels = '{model="slow",version="1"}'

        def metric(name: str) -> float:
            return server.metrics().get(name + labels, 0.0)

        def wait_for(name: str, value: float) -> None:
            deadline = time.monotonic() + 30
            while metric(name) < value:
                assert time.monotonic() < deadline, (name, metric(name))
                time.sleep(0.01)

        with ThreadPoolExecutor(4) as pool:
            # 64 samples × 768 layers of 1024²: a batch of a second or more, the worker busy.
            hog = pool.submit(c.infer, "slow", inputs({"x": np.ones((64, 1024), np.float32)}))
            wait_for("inductive_inference_queue_duration_seconds_count", 1)  # it started
            code, _ = status(lambda: c.infer("slow", inputs(one), client_timeout=0.05))
            assert code == "DEADLINE_EXCEEDED"
            code, message = status(lambda: c.infer("slow", inputs(one), timeout=20_000))
            assert code == "DEADLINE_EXCEEDED"
            assert "timed out after 20.0 ms waiting in the queue of model slow:1" in message
            queued = [pool.submit(c.infer, "slow", inputs(one)) for _ in range(2)]
            wait_for("inductive_inference_queue_depth", 2)
            code, message = status(lambda: c.infer("slow", inputs(one)))
            assert code == "RESOURCE_EXHAUSTED"
            assert "overloaded: 2 requests queued (max_queue_size 2)" in message
            assert hog.result().as_numpy("y").shape == (64, 1024)
            for request in queued:
                assert request.result().as_numpy("y").shape == (1, 1024)
        assert c.infer("slow", inputs(one)).as_numpy("y").shape == (1, 1024)
        outcomes = server.metrics()
        grpc_labels = 'model="slow",outcome="{}",protocol="grpc",version="1"'
        # The `timeout` one, and the deadline one unless grpcio cancelled it first (its queue
        # timeout is the deadline, as the server saw it: the two race).
        timeouts = outcomes[
            f"inductive_inference_requests_total{{{grpc_labels.format('timeout')}}}"
        ]
        assert timeouts in (1, 2)
        assert (
            outcomes[f"inductive_inference_requests_total{{{grpc_labels.format('unavailable')}}}"]
            == 1
        )


@pytest.mark.slow
def test_sigterm_drains_grpc_calls(tmp_path: Path) -> None:
    """Calls in flight when SIGTERM lands finish; new calls are UNAVAILABLE, readiness and the
    health service say so; the process exits 0."""
    store = tmp_path / "store"
    config = ModelConfig(batching=BatchingConfig(max_batch_size=2, max_queue_delay_ms=0))
    publish(store, "slow", models.slow_model(tmp_path, width=512, depth=48), config=config)
    env = {"INDUCTIVE_SHUTDOWN_DELAY_S": "1.5", "INDUCTIVE_MODEL_CONTROL_MODE": "none"}
    with running_server(store, tmp_path, env) as server:
        c = client(server)
        x = {"x": np.ones((1, 512), np.float32)}
        results: list[triton.InferResult | BaseException] = []
        done = threading.Event()

        def callback(result: triton.InferResult, error: BaseException | None) -> None:
            results.append(error if error is not None else result)
            if len(results) == 12:
                done.set()

        for _ in range(12):
            c.async_infer("slow", inputs(x), callback)
        time.sleep(0.1)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        code, message = status(lambda: c.infer("slow", inputs(x)))
        assert (code, message) == ("UNAVAILABLE", "server is shutting down")
        assert not c.is_server_ready()
        with grpc.insecure_channel(server.grpc_address) as channel:
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            answer = check(health_pb2.HealthCheckRequest())
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert done.wait(30)
        assert server.process.wait(30) == 0
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed[:2]
    assert "draining" in server.log()


def test_the_grpc_port_can_be_off_and_a_taken_port_fails_the_start(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path))
    with running_server(store, tmp_path, {"INDUCTIVE_GRPC_PORT": "off"}) as server:
        assert server.grpc_address == ""
        assert (
            http_client(server)
            .infer("add", http_inputs({"x": X, "y": X}))
            .as_numpy("sum")[0]
            .tolist()
            == (2 * X)[0].tolist()
        )
        assert "gRPC listening" not in server.log()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with (
            pytest.raises(RuntimeError, match="gRPC cannot listen on 127.0.0.1:" + port),
            running_server(store, tmp_path, {"INDUCTIVE_GRPC_PORT": port}),
        ):
            pass
