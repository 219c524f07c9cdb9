"""Model lifecycle on the real server: hot reload under load without a failed request, failed
versions never replacing a working one, the repository API and its auth, alias policies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from model_store import open_store
from model_store.backends.base import CHANGES
from model_store.schema import BatchingConfig, ModelConfig, VersionPolicy
from tests.service import models
from tests.service.helpers import ServerProcess, publish, running_server

ADMIN = "s3cret-admin-token"
OFFSETS = {1: 0.0, 2: 100.0, 3: 200.0}


def _infer(client: httpx.Client, url: str, x: np.ndarray) -> tuple[int, np.ndarray | str]:
    body = {"inputs": [
        {"name": n, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        for n in ("x", "y")
    ]}  # fmt: skip
    response = client.post(f"{url}/v2/models/add/infer", json=body, timeout=30)
    if response.status_code != 200:
        return -response.status_code, response.text
    doc = response.json()
    out = doc["outputs"][0]
    return int(doc["model_version"]), np.asarray(out["data"], np.float32).reshape(out["shape"])


class Load:
    """Client threads sending requests until stopped; every answer checked against its version."""

    def __init__(self, url: str, threads: int = 6) -> None:
        self.url = url
        self.failures: list[str] = []
        self.versions: list[list[int]] = [[] for _ in range(threads)]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        rng = np.random.default_rng(index)
        with httpx.Client() as client:
            while not self._stop.is_set():
                x = rng.standard_normal((1 + index % 2, 4), dtype=np.float32)
                try:
                    version, result = _infer(client, self.url, x)
                except httpx.HTTPError as exc:
                    self.failures.append(f"transport: {exc!r}")
                    continue
                if version < 0:
                    self.failures.append(f"status {-version}: {result}")
                    continue
                expected = models.add_reference(x, x, OFFSETS[version])
                if not np.array_equal(result, expected):
                    self.failures.append(f"v{version}: wrong result")
                self.versions[index].append(version)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def _wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise TimeoutError("condition not met in time")


def _admin(server: ServerProcess, path: str, token: str | None = ADMIN) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{server.url}/v2/repository{path}", headers=headers, timeout=60)


def _index(server: ServerProcess) -> dict[tuple[str, str], dict[str, str]]:
    entries = _admin(server, "/index").json()
    return {(e["name"], e.get("version", "")): e for e in entries}


@pytest.mark.slow
def test_hot_reload_under_load_fails_no_request(tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = ModelConfig(batching=BatchingConfig(max_batch_size=16, max_queue_delay_ms=2))
    publish(store, "add", models.add_model(tmp_path, offset=OFFSETS[1]), config=config)
    env = {"INDUCTIVE_POLL_INTERVAL_S": "0.2", "INDUCTIVE_ADMIN_TOKEN": ADMIN}
    with running_server(store, tmp_path, env) as server, Load(server.url) as load:
        time.sleep(0.5)
        for version in (2, 3):
            path = models.add_model(tmp_path, offset=OFFSETS[version], name=f"add_v{version}")
            assert publish(store, "add", path, config=config) == version
            _wait_for(lambda v=version: any(v in seen[-3:] for seen in load.versions if seen))
            time.sleep(0.5)
        index = _index(server)
        state = server.metrics()
    assert load.failures == []
    assert sum(map(len, load.versions)) > 100
    for seen in load.versions:
        assert seen == sorted(seen), "a client saw an older version after a newer one"
        assert seen[-1] == 3
    assert index[("add", "3")]["state"] == "READY"
    for old in ("1", "2"):
        assert index[("add", old)]["state"] == "UNAVAILABLE"
    assert state['inductive_model_state{model="add",state="READY",version="3"}'] == 1


@pytest.fixture
def explicit_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path, offset=OFFSETS[1]))
    # Explicit mode loads only what INDUCTIVE_MODELS lists; the repository API does the rest.
    env = {
        "INDUCTIVE_MODEL_CONTROL_MODE": "explicit",
        "INDUCTIVE_ADMIN_TOKEN": ADMIN,
        "INDUCTIVE_MODELS": "add",
    }
    with running_server(store, tmp_path, env) as server:
        yield server, store


def test_a_model_removed_from_the_store_is_unloaded_after_its_grace(tmp_path: Path) -> None:
    """Deleted while a long batch of it computes: the batch is answered, the model serves
    through its grace period, then it is unloaded, logged and counted; the other model stays."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    store = tmp_path / "store"
    config = ModelConfig(batching=BatchingConfig(max_batch_size=64, max_queue_delay_ms=0))
    publish(store, "slow", models.slow_model(tmp_path, width=1024, depth=768), config=config)
    publish(store, "add", models.add_model(tmp_path, offset=OFFSETS[1]))
    grace = 1.0
    env = {"INDUCTIVE_POLL_INTERVAL_S": "0.1", "INDUCTIVE_REMOVAL_GRACE_S": str(grace)}
    with running_server(store, tmp_path, env) as server, ThreadPoolExecutor(4) as pool:

        def slow(samples: int) -> httpx.Response:
            x = np.ones((samples, 1024), np.float32)
            body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                "data": x.ravel().tolist()}]}  # fmt: skip
            return httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=120)

        def queued() -> float:
            key = 'inductive_inference_queue_duration_seconds_count{model="slow",version="1"}'
            return server.metrics().get(key, 0.0)

        in_flight = [pool.submit(slow, 64)]
        _wait_for(lambda: queued() >= 1)  # the first batch is computing
        in_flight += [pool.submit(slow, 64) for _ in range(3)]  # seconds of work queued
        shutil.rmtree(store / "slow")
        # Deleted by hand, then the store-wide change marker rewritten as every change made
        # through a store rewrites it (without it, the server notices at its next full read of
        # the store, within a minute).
        (store / CHANGES).write_text("the slow model deleted by hand")
        deleted = time.monotonic()
        _wait_for(lambda: "model slow: gone from the store for" in server.log(), timeout=30)
        assert time.monotonic() - deleted >= grace, "unloaded before its grace period"
        assert not all(f.done() for f in in_flight), "nothing was in flight at the unloading"
        for future in in_flight:
            response = future.result()
            assert response.status_code == 200, response.text
        refused = slow(1)
        assert refused.status_code == 404
        assert "'slow' is not loaded" in refused.json()["error"]
        metrics = server.metrics()
        assert metrics['inductive_models_removed_total{model="slow"}'] == 1
        assert "model slow: gone from the store for" in server.log()
        assert "model slow v1 unloaded (removed from the store)" in server.log()
        with httpx.Client() as client:
            assert _infer(client, server.url, np.ones((1, 4), np.float32))[0] == 1
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_explicit_mode_loads_nothing_until_asked(tmp_path: Path) -> None:
    """Explicit mode without INDUCTIVE_MODELS loads no model at start-up (Triton's explicit
    mode): the store's models are known, none is loaded, and the repository API loads one."""
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path, offset=OFFSETS[1]))
    publish(store, "other", models.add_model(tmp_path, offset=OFFSETS[2], name="other"))
    env = {"INDUCTIVE_MODEL_CONTROL_MODE": "explicit", "INDUCTIVE_ADMIN_TOKEN": ADMIN}
    with running_server(store, tmp_path, env) as server, httpx.Client() as client:
        x = np.ones((1, 4), np.float32)
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
        assert _admin(server, "/index").json() == [{"name": "add"}, {"name": "other"}]
        status, message = _infer(client, server.url, x)
        assert status == -404
        assert "'add' is not loaded" in str(message)
        assert not [k for k in server.metrics() if k.startswith("inductive_model_state{")]
        assert "ready in" not in server.log(), "a model was loaded at start-up"
        assert _admin(server, "/models/add/load").status_code == 200
        assert _infer(client, server.url, x)[0] == 1
        assert set(_index(server)) == {("add", "1"), ("other", "")}


def test_failed_versions_never_replace_the_working_one(
    explicit_server: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    server, store = explicit_server
    x = np.ones((1, 4), np.float32)
    failures = {
        2: models.unknown_op_model(tmp_path),
        3: models.warmup_failure_model(tmp_path),
        4: models.add_model(tmp_path, offset=5.0, name="corrupted"),
    }
    for version, path in failures.items():
        assert publish(store, "add", path) == version
    # A checksum mismatch: the published file changes after its manifest was written.
    with (store / "add" / "4" / "model.onnx").open("ab") as f:
        f.write(b"tampered")
    # The policy (latest 1) wants v4, then v3 and v2 are not wanted at all: load each in turn by
    # pointing a `specific` policy at it.
    reasons = {}
    for version in failures:
        open_store(str(store)).set_config(
            "add", ModelConfig(version_policy=VersionPolicy(kind="specific", versions=(version,)))
        )
        response = _admin(server, "/models/add/load")
        assert response.status_code == 400, response.text
        assert f"version {version}" in response.json()["error"]
        reasons[version] = _index(server)[("add", str(version))]
        with httpx.Client() as client:
            assert _infer(client, server.url, x)[0] == 1  # v1 still serves
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert all(r["state"] == "FAILED" for r in reasons.values())
    assert "NoSuchOp" in reasons[2]["reason"]
    assert "Reshape" in reasons[3]["reason"] or "reshape" in reasons[3]["reason"].lower()
    assert "IntegrityError" in reasons[4]["reason"]
    assert server.metrics()['inductive_model_load_failures_total{model="add"}'] == 3


def test_repository_api_auth_and_unload(explicit_server: tuple[ServerProcess, Path]) -> None:
    server, _ = explicit_server
    missing = _admin(server, "/index", token=None)
    assert missing.status_code == 401
    assert "Bearer" in missing.json()["error"]
    wrong = _admin(server, "/index", token="not-it")
    assert wrong.status_code == 403
    assert "not-it" not in wrong.text
    assert ADMIN not in server.log()
    assert _index(server)[("add", "1")]["state"] == "READY"
    ready_only = httpx.post(f"{server.url}/v2/repository/index", json={"ready": True},
                            headers={"Authorization": f"Bearer {ADMIN}"}).json()  # fmt: skip
    assert ready_only == [{"name": "add", "version": "1", "state": "READY", "reason": ""}]
    assert _admin(server, "/models/nope/load").status_code == 404
    assert _admin(server, "/models/add/unload").status_code == 200
    with httpx.Client() as client:
        status, message = _infer(client, server.url, np.ones((1, 4), np.float32))
    assert status == -404
    assert "not loaded" in str(message)
    assert _index(server)[("add", "1")]["state"] == "UNAVAILABLE"
    # Explicit mode: the repository API decides what to serve, and now nothing is asked for:
    # ready, as Triton is (the repository API behind the same load balancer stays callable).
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert _admin(server, "/models/add/load").status_code == 200
    with httpx.Client() as client:
        assert _infer(client, server.url, np.ones((1, 4), np.float32))[0] == 1
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_alias_policy_follows_promote_and_rollback(
    explicit_server: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    server, store_dir = explicit_server
    store = open_store(str(store_dir))
    store.set_config("add", ModelConfig(version_policy=VersionPolicy(kind="alias")))
    publish(store_dir, "add", models.add_model(tmp_path, offset=OFFSETS[2], name="v2"))
    x = np.ones((1, 4), np.float32)

    def served_after_load() -> int:
        assert _admin(server, "/models/add/load").status_code == 200
        with httpx.Client() as client:
            return _infer(client, server.url, x)[0]

    store.promote("add", 1)
    assert served_after_load() == 1
    store.promote("add", 2)
    assert served_after_load() == 2
    store.rollback("add")
    assert served_after_load() == 1


def test_repository_api_off_without_admin_token(server: ServerProcess) -> None:
    response = httpx.post(f"{server.url}/v2/repository/index")
    assert response.status_code == 403
    assert "INDUCTIVE_ADMIN_TOKEN" in response.json()["error"]


def test_store_gone_while_polling_keeps_serving(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path, offset=OFFSETS[1]))
    env = {"INDUCTIVE_POLL_INTERVAL_S": "0.1"}
    with running_server(store, tmp_path, env) as server, httpx.Client() as client:
        x = np.ones((1, 4), np.float32)
        away = tmp_path / "store-away"
        store.rename(away)  # the store disappears (unmounted volume, outage)
        time.sleep(0.5)
        assert _infer(client, server.url, x)[0] == 1
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
        # An outage, not an empty store: counted and logged like an unreachable S3.
        assert server.metrics()["inductive_store_poll_failures_total"] >= 1
        assert f"store root {store} is missing" in server.log()
        away.rename(store)  # back: polling picks up what was published meanwhile
        publish(store, "add", models.add_model(tmp_path, offset=OFFSETS[2], name="v2"))
        _wait_for(lambda: _infer(client, server.url, x)[0] == 2)


def test_a_model_deleted_between_the_listing_and_its_read_is_not_a_poll_failure(
    tmp_path: Path,
) -> None:
    """The race a real deletion opens: the poll lists the model (a complete version is there),
    then its directory is removed before the poll reads its versions. That is a model going away,
    which the removal grace handles, not a store that failed to answer."""
    import asyncio
    import shutil

    from service.lifecycle.manager import ModelManager
    from service.metrics import Metrics
    from service.settings import Settings

    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path, offset=OFFSETS[1]))

    async def scenario() -> None:
        manager = ModelManager(Settings(store=str(store), poll_interval_s=0.02), Metrics())
        await manager.prepare()
        await manager.load_all()
        try:
            listing = manager._store.list_models
            removed = asyncio.Event()
            loop = asyncio.get_running_loop()

            def list_then_delete() -> list[str]:
                names = listing()  # the real listing, then the deletion lands
                if "add" in names and not removed.is_set():
                    shutil.rmtree(store / "add")
                    loop.call_soon_threadsafe(removed.set)
                return names

            manager._store.list_models = list_then_delete
            await asyncio.wait_for(removed.wait(), 10)
            await asyncio.sleep(0.2)  # polls after it: the model is no longer listed
            assert manager.metrics.store_poll_failures._value.get() == 0
            assert manager.lookup("add").version == 1  # serving through its removal grace
        finally:
            await manager.close()

    asyncio.run(scenario())


def test_a_model_deleted_from_the_store_keeps_serving(tmp_path: Path) -> None:
    """The store is there but the model's directory is gone: not an outage, and the loaded
    version keeps serving through the removal grace period (60 s by default; the unloading
    after it is test_a_model_removed_from_the_store_is_unloaded_after_its_grace)."""
    import shutil

    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path, offset=OFFSETS[1]))
    env = {"INDUCTIVE_POLL_INTERVAL_S": "0.1"}
    with running_server(store, tmp_path, env) as server, httpx.Client() as client:
        shutil.rmtree(store / "add")
        time.sleep(0.5)
        assert _infer(client, server.url, np.ones((1, 4), np.float32))[0] == 1
        assert server.metrics().get("inductive_store_poll_failures_total", 0) == 0
