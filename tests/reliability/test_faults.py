"""Faults that must stay local: a model error fails only its own requests; a model file damaged on
disk after loading, an unreachable store, slow or vanishing clients and a publisher killed midway
do not take the server or anybody else's request down."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnx
import orjson
import pytest

from model_store import add_onnx, open_store
from model_store.schema import BatchingConfig, ModelConfig
from service.settings import Settings
from tests.model_store.helpers import manifest_for, write_model
from tests.reliability.clients import add_body, connect, infer_add, raw_request
from tests.reliability.contract import error_message
from tests.reliability.waits import eventually, served_versions
from tests.service import models
from tests.service.helpers import REPO_ROOT, ServerProcess, publish, running_server

POLL = {"INDUCTIVE_MODEL_CONTROL_MODE": "poll", "INDUCTIVE_POLL_INTERVAL_S": "0.2"}
ADD_CONFIG = ModelConfig(batching=BatchingConfig(max_batch_size=32, max_queue_delay_ms=20))


def _keeps_serving(server: ServerProcess, seconds: float, expected_offset: float = 0.0) -> int:
    """Sends `add` requests for `seconds`; every one must succeed; returns how many."""
    sent = 0
    deadline = time.monotonic() + seconds
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            x = np.full((1, 4), sent, np.float32)
            np.testing.assert_array_equal(infer_add(client, server.url, x), x + x + expected_offset)
            sent += 1
    assert server.process.poll() is None
    return sent


@pytest.fixture
def add_store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path), config=ADD_CONFIG)
    return store


# --- a model error inside one batch ------------------------------------------------------------


def test_a_runtime_error_fails_only_the_requests_it_belongs_to(
    tmp_path: Path, add_store: Path
) -> None:
    """`faulty` gathers x[i, idx[i]]: idx 9 makes ONNX Runtime fail the whole batch it is in.
    Good requests in that batch, in other batches and on another model all succeed; the bad one
    alone gets the error."""
    config = ModelConfig(batching=BatchingConfig(max_batch_size=8, max_queue_delay_ms=20))
    publish(add_store, "faulty", models.faulty_model(tmp_path), config=config)
    with running_server(add_store, tmp_path, {"INDUCTIVE_MODEL_CONTROL_MODE": "none"}) as server:
        bad = {i for i in range(0, 96, 12)}  # 8 bad requests among 96, spread over the batches

        def faulty(i: int) -> httpx.Response:
            x = np.arange(4, dtype=np.float32) + 10 * i
            body = {"inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x.tolist()},
                {"name": "idx", "shape": [1, 1], "datatype": "INT64",
                 "data": [9 if i in bad else i % 4]},
            ]}  # fmt: skip
            return httpx.post(f"{server.url}/v2/models/faulty/infer", json=body, timeout=60)

        def add(i: int) -> np.ndarray:
            with httpx.Client() as client:
                return infer_add(client, server.url, np.full((1, 4), i, np.float32))

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(faulty, range(96)))
            sums = list(pool.map(add, range(32)))
        for i, response in enumerate(answers):
            if i in bad:
                # It fails alone too: its own data is at fault, a 400 naming the failing node.
                message = error_message(response, 400)
                assert "model 'faulty' version 1 failed on this input" in message
                assert "GatherElements op: Out of range value in index tensor" in message, message
                assert ".cc:" not in message, message  # no build paths or C++ signatures
                assert "onnxruntime::" not in message, message
            else:
                assert response.status_code == 200, (i, response.text)
                assert response.json()["outputs"][0]["data"] == [10 * i + i % 4]
        for i, total in enumerate(sums):
            np.testing.assert_array_equal(total, np.full((1, 4), 2 * i, np.float32))
        metrics = server.metrics()
        outcomes = (
            'inductive_inference_requests_total{{model="faulty",outcome="{}",protocol="http",'
            'version="1"}}'
        )
        assert metrics[outcomes.format("bad_request")] == len(bad)
        assert metrics[outcomes.format("error")] == 0
        assert metrics[outcomes.format("success")] == 96 - len(bad)
        # Bad requests shared batches with good ones: fewer batches than requests.
        assert metrics['inductive_inference_batch_size_count{model="faulty",version="1"}'] < 96
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


# --- the model on disk damaged after loading ---------------------------------------------------


@pytest.mark.parametrize("damage", ["corrupt", "delete"])
def test_a_model_file_damaged_after_loading_keeps_serving_from_memory(
    tmp_path: Path, add_store: Path, damage: str
) -> None:
    version_dir = add_store / "add" / "1"
    with running_server(add_store, tmp_path, POLL) as server:
        _keeps_serving(server, 0.3)
        if damage == "corrupt":
            (version_dir / "model.onnx").write_bytes(os.urandom(4096))
        else:
            shutil.rmtree(version_dir)
        _keeps_serving(server, 1.5)  # several polls see the damaged store
        assert served_versions(server, "add") == ["1"]
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


# --- the store unreachable while polling -------------------------------------------------------


def test_local_store_gone_keeps_serving_and_polling_recovers(
    tmp_path: Path, add_store: Path
) -> None:
    with running_server(add_store, tmp_path, POLL) as server:
        _keeps_serving(server, 0.3)
        away = add_store.with_name("store-away")
        add_store.rename(away)
        _keeps_serving(server, 1.5)
        failures = server.metrics()["inductive_store_poll_failures_total"]
        assert failures >= 1, "the vanished store was not noticed by the poller"
        away.rename(add_store)
        publish(add_store, "add", _v2_model(tmp_path))
        eventually(lambda: served_versions(server, "add") == ["2"], 20, "v2 served")
        _keeps_serving(server, 0.3, expected_offset=100.0)


@pytest.mark.s3
@pytest.mark.slow
def test_s3_store_down_keeps_serving_and_polling_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("boto3", reason="the S3 backend needs the s3 extra")
    from tests.model_store.seaweed import SeaweedS3

    with SeaweedS3(tmp_path / "seaweed") as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)  # for this process's store and the server's
        store = open_store(s3.uri("models"))
        add_onnx(store, "add", models.add_model(tmp_path), config=ADD_CONFIG)
        env = {**POLL, "INDUCTIVE_STORE": s3.uri("models"), "INDUCTIVE_POLL_INTERVAL_S": "0.5"}
        with running_server(tmp_path / "unused", tmp_path, env) as server:
            _keeps_serving(server, 0.3)
            s3.stop()
            _keeps_serving(server, 3.0)
            failures = server.metrics()["inductive_store_poll_failures_total"]
            assert failures >= 1, "the outage was not noticed by the poller"
            s3.start()
            add_onnx(store, "add", _v2_model(tmp_path))
            eventually(lambda: served_versions(server, "add") == ["2"], 30, "v2 served")
            _keeps_serving(server, 0.3, expected_offset=100.0)


def _v2_model(tmp_path: Path) -> Path:
    """`add` with offset 100, so that answers tell the versions apart."""
    directory = tmp_path / "v2"
    directory.mkdir()
    return models.add_model(directory, offset=100.0)


# --- slow and vanishing clients ----------------------------------------------------------------

KEEP_ALIVE = {"INDUCTIVE_TIMEOUT_KEEP_ALIVE_S": "2", "INDUCTIVE_MODEL_CONTROL_MODE": "none"}
SLOW_CLIENTS = 32


def _trickle(sock: socket.socket, stop: threading.Event) -> None:
    """Headers, then one body byte a second, never the whole body (Content-Length 100000)."""
    try:
        sock.sendall(b"POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100000\r\n\r\n{")  # fmt: skip
        while not stop.wait(1.0):
            sock.sendall(b" ")
    except OSError:
        pass  # the server cut the connection


def test_slow_clients_hold_no_worker_hostage(tmp_path: Path, add_store: Path) -> None:
    with running_server(add_store, tmp_path, KEEP_ALIVE) as server:
        stop = threading.Event()
        sockets = [connect(server.url) for _ in range(SLOW_CLIENTS)]
        # Half trickle a body that never completes, half never finish their headers.
        threads = [threading.Thread(target=_trickle, args=(s, stop)) for s in sockets[::2]]
        for s in sockets[1::2]:
            s.sendall(b"POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nContent-Le")
        for t in threads:
            t.start()
        try:
            started = time.monotonic()
            served = _keeps_serving(server, 2.0)
            per_request = (time.monotonic() - started) / served
            assert per_request < 0.5, f"{per_request:.3f} s a request with slow clients around"
        finally:
            stop.set()
            for t in threads:
                t.join()
            for s in sockets:
                s.close()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes (or answers and closes) the connection within `seconds`."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_a_slow_client_is_cut_off_after_the_server_timeout(tmp_path: Path, add_store: Path) -> None:
    with running_server(add_store, tmp_path, KEEP_ALIVE) as server:
        stop = threading.Event()
        trickling, headers_only, silent = (connect(server.url) for _ in range(3))
        thread = threading.Thread(target=_trickle, args=(trickling, stop))
        thread.start()
        headers_only.sendall(b"POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nContent-Le")
        try:
            # Generous: 3 × the keep-alive timeout, the only timeout the server has.
            results = {}
            clients = {"trickling body": trickling, "headers": headers_only, "silent": silent}
            with ThreadPoolExecutor(len(clients)) as pool:
                for name, sock in clients.items():
                    results[name] = pool.submit(_closed_within, sock, 6.0)
            open_ones = [name for name, f in results.items() if not f.result()]
            assert not open_ones, f"still connected after 6 s: {open_ones}"
        finally:
            stop.set()
            thread.join()
            for sock in (trickling, headers_only, silent):
                sock.close()


# The default connection limit (INDUCTIVE_MAX_CONNECTIONS); past it every request is refused with
# the JSON 503 of any other refusal.
MAX_CONNECTIONS = Settings.model_fields["max_connections"].default


def test_a_connection_flood_is_refused_with_a_json_503(tmp_path: Path, add_store: Path) -> None:
    wanted = MAX_CONNECTIONS + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < wanted + 256:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {wanted + 256}")
    # The server process inherits the raised limit, so the flood meets the server's limit first.
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted + 256), hard))
    try:
        with running_server(
            add_store, tmp_path, {"INDUCTIVE_MODEL_CONTROL_MODE": "none"}
        ) as server:
            flood = [connect(server.url) for _ in range(wanted)]
            try:
                time.sleep(0.5)  # the server has accepted them all
                response = httpx.post(
                    f"{server.url}/v2/models/add/infer",
                    json=add_body(np.ones((1, 4), np.float32), np.ones((1, 4), np.float32)),
                )
                assert error_message(response, 503)
                assert response.headers.get("retry-after")
            finally:
                for sock in flood:
                    sock.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_clients_vanishing_mid_request_do_not_poison_their_batch(
    tmp_path: Path, add_store: Path
) -> None:
    """In each round, 8 clients send a whole request and hang up at once, 4 hang up halfway
    through their body, and 12 wait for their answers: all in the same 20 ms batching window."""
    with running_server(add_store, tmp_path, {"INDUCTIVE_MODEL_CONTROL_MODE": "none"}) as server:
        rounds, good_per_round = 10, 12
        barrier = threading.Barrier(24)

        def vanish(halfway: bool) -> None:
            body = orjson.dumps(
                add_body(np.full((1, 4), -1, np.float32), np.ones((1, 4), np.float32))
            )
            request = raw_request("/v2/models/add/infer", body)
            with connect(server.url) as sock:
                barrier.wait()
                sock.sendall(request[: len(request) - len(body) // 2] if halfway else request)
                # SO_LINGER 0: the close is a reset, the harshest way to leave.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

        def wait(i: int) -> np.ndarray:
            with httpx.Client() as client:
                client.get(f"{server.url}/v2/health/live")  # connect before the barrier
                x = np.full((1, 4), i, np.float32)
                barrier.wait()
                return infer_add(client, server.url, x)

        for _ in range(rounds):
            with ThreadPoolExecutor(24) as pool:
                leaving = [pool.submit(vanish, i >= 8) for i in range(12)]
                staying = [pool.submit(wait, i) for i in range(good_per_round)]
                for f in leaving:
                    f.result()
                for i, answer in enumerate(staying):
                    expected = np.full((1, 4), 2 * i, np.float32)
                    np.testing.assert_array_equal(answer.result(), expected)
            barrier.reset()
        metrics = server.metrics()
        errors = metrics[
            'inductive_inference_requests_total{model="add",outcome="error",protocol="http",'
            'version="1"}'
        ]
        assert errors == 0
        # The batches did mix requests (else the test proves nothing about batch neighbours).
        executions = metrics['inductive_inference_exec_count_total{model="add",version="1"}']
        assert executions < rounds * good_per_round
        _keeps_serving(server, 0.3)


# --- a publisher killed midway -----------------------------------------------------------------


def test_a_publisher_killed_midway_is_invisible_to_a_polling_server(tmp_path: Path) -> None:
    """The store side (no version, next publish works) is tests/model_store/test_publish.py::
    test_a_publisher_killed_midway_leaves_no_version_and_blocks_nothing; this is what a server
    polling that store sees meanwhile: nothing but the complete versions."""
    store_dir = tmp_path / "store"
    model = write_model(tmp_path / "src")
    proto = onnx.load(str(model))
    proto.ir_version = 8  # the helper writes the newest IR, which ONNX Runtime may not read yet
    onnx.save(proto, str(model))
    store = open_store(store_dir)
    store.publish("m", {"model.onnx": model}, manifest_for("m"))
    blob = tmp_path / "blob.bin"
    with blob.open("wb") as f:
        f.truncate(128 << 20)  # sparse: cheap to create, slow enough to copy to be caught midway
    with running_server(store_dir, tmp_path, POLL) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.model_store.publisher", str(store_dir), "m", "1",
             str(model), str(blob)],
            cwd=REPO_ROOT, stdout=subprocess.PIPE,
        )  # fmt: skip
        staging = store_dir / "m" / ".staging"
        caught = False
        deadline = time.monotonic() + 30
        while not caught and time.monotonic() < deadline and proc.poll() is None:
            caught = staging.is_dir() and any(
                p.stat().st_size > 0 for p in staging.glob("*/blob.bin")
            )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert caught, "the publisher was not caught while copying its large file"
        x = np.ones((1, 4), np.float32)
        body = {
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x.ravel().tolist()}
            ]
        }
        deadline = time.monotonic() + 1.5  # several polls
        while time.monotonic() < deadline:
            assert served_versions(server, "m") == ["1"]
            assert httpx.post(f"{server.url}/v2/models/m/infer", json=body).status_code == 200
        store.publish("m", {"model.onnx": model}, manifest_for("m"))
        eventually(lambda: served_versions(server, "m") == ["2"], 20, "v2 served")
        log = server.log()
        assert "failed to load" not in log, log
