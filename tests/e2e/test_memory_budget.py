"""Models under a memory budget, against the real server process with tritonclient: loads on
first request, least-recently-used eviction with concurrent requests that never fail, a pinned
model never evicted, a model larger than the whole budget refused, the metrics."""

from __future__ import annotations

import random
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from benchmarks.harness.servers import ServerProcess
from benchmarks.sized_models import expected, publish_sized
from tests.service.helpers import running_server

MB = 1 << 20
SMALL = [f"m{i}" for i in range(6)]  # 4 MB of weights each: ≈ 8 MB expected
BUDGET_MB = 24  # the pinned model and about two small ones
TOKEN = "admin-secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("budget")
    store = str(root / "store")
    for i, name in enumerate(SMALL):
        publish_sized(store, name, 4 * MB, float(i), root / "scratch")
    publish_sized(store, "pinned", 1 * MB, 100.0, root / "scratch", pinned=True)
    publish_sized(store, "huge", 40 * MB, 200.0, root / "scratch")
    env = {
        "INDUCTIVE_MEMORY_BUDGET_MB": str(BUDGET_MB),
        "INDUCTIVE_POLL_INTERVAL_S": "0.5",
        "INDUCTIVE_ADMIN_TOKEN": TOKEN,
    }
    with running_server(Path(store), root, env) as running:
        yield running


def _infer(client: triton.InferenceServerClient, name: str, x: np.ndarray) -> np.ndarray:
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer(name, [tensor])
    return np.asarray(result.as_numpy("y"))


def _index(server: ServerProcess) -> list[dict[str, str]]:
    request = urllib.request.Request(
        f"{server.url}/v2/repository/index",
        data=b"{}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(orjson.loads(response.read()))


def test_only_the_pinned_model_loads_at_start_up(server: ServerProcess) -> None:
    log = server.log()
    assert "model pinned v1 ready" in log
    assert "model m0 v1 ready" not in log or "unloading model" in log


def test_concurrent_requests_across_evictions_all_succeed(server: ServerProcess) -> None:
    failures: list[str] = []

    def client_thread(seed: int) -> None:
        rng = random.Random(seed)
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        for _ in range(25):
            index = rng.randrange(len(SMALL))
            x = np.random.default_rng(seed).random((2, 16), dtype=np.float32)
            try:
                got = _infer(client, SMALL[index], x)
            except InferenceServerException as exc:
                failures.append(f"{SMALL[index]}: {exc}")
                continue
            if not np.allclose(got, expected(x, float(index)), rtol=1e-4):
                failures.append(f"{SMALL[index]}: wrong answer {got.ravel()}")

    threads = [threading.Thread(target=client_thread, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert failures == []
    metrics = server.metrics()
    assert metrics["inductive_memory_budget_evictions_total"] >= 3
    assert metrics['inductive_memory_budget_loads_total{outcome="loaded"}'] >= 4
    assert metrics['inductive_memory_budget_requests_total{outcome="miss"}'] >= 4
    assert metrics['inductive_memory_budget_requests_total{outcome="hit"}'] >= 1
    assert metrics["inductive_memory_budget_bytes"] == BUDGET_MB * MB
    assert metrics["inductive_memory_budget_used_bytes"] <= BUDGET_MB * MB
    resident = [k for k in metrics if k.startswith("inductive_model_resident_bytes{")]
    assert 'inductive_model_resident_bytes{model="pinned",version="1"}' in resident
    assert metrics["inductive_memory_budget_load_duration_seconds_count"] >= 4
    # Evicted versions show as unloaded in the repository index, with why.
    states = {(e["name"], e.get("state")): e.get("reason", "") for e in _index(server)}
    assert any(s == "UNAVAILABLE" and "memory budget" in why for (_, s), why in states.items())


def test_the_pinned_model_is_never_evicted(server: ServerProcess) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    for name in SMALL:  # more than the budget holds beside it, twice over
        _infer(client, name, np.ones((1, 16), np.float32))
    assert "unloading model pinned" not in server.log()
    states = {e["name"]: e.get("state") for e in _index(server) if e.get("version") == "1"}
    assert states["pinned"] == "READY"
    x = np.ones((1, 16), np.float32)
    assert np.allclose(_infer(client, "pinned", x), expected(x, 100.0))


def test_a_model_larger_than_the_budget_is_refused_clearly(server: ServerProcess) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    for _ in range(2):  # refused again at once, never loaded in a loop
        with pytest.raises(InferenceServerException) as caught:
            _infer(client, "huge", np.ones((1, 16), np.float32))
        assert caught.value.status() == "400"
        message = caught.value.message()
        assert message == (
            "model 'huge' needs an expected 62.0 MB, more than the whole memory budget of "
            "24.0 MB (INDUCTIVE_MEMORY_BUDGET_MB): it is not loaded"
        )
    assert "model huge v1 ready" not in server.log()
    assert server.metrics()['inductive_memory_budget_loads_total{outcome="refused"}'] == 1


def test_the_grpc_door_waits_for_the_load_too(server: ServerProcess) -> None:
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(server.grpc_address)
    for index in (5, 0, 3):  # each one loaded on this request, evicting another
        x = np.full((1, 16), 0.5, np.float32)
        tensor = triton_grpc.InferInput("x", [1, 16], "FP32")
        tensor.set_data_from_numpy(x)
        got = client.infer(SMALL[index], [tensor]).as_numpy("y")
        assert np.allclose(got, expected(x, float(index)), rtol=1e-4)
