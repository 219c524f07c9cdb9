"""Serving from an S3 store (SeaweedFS) under load: versions are synced into the local cache and
verified before loading (a corrupted object never loads, the old version keeps serving), and a
store outage leaves loaded models serving and ready while polling recovers when it returns.

`tests/reliability/test_faults.py` checks the outage with one client; this one adds the steady
load, readiness during the outage, the log line, and the corrupted object."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from benchmarks.harness.load_pool import LoadPool
from model_store import ModelStore, add_onnx
from tests.e2e.tiny import BODY, CONFIG, MODEL, artifact, check_sum, publish_v1_stable
from tests.model_store.seaweed import SeaweedS3
from tests.reliability.waits import eventually
from tests.service import models
from tests.service.helpers import ServerProcess, running_server

pytestmark = [pytest.mark.s3, pytest.mark.slow]

ADMIN = "e2e-admin-token"


def _env(store: ModelStore, cache: Path) -> dict[str, str]:
    return {
        "INDUCTIVE_STORE": store.uri,
        "INDUCTIVE_CACHE_DIR": str(cache),
        "INDUCTIVE_MODEL_CONTROL_MODE": "poll",
        "INDUCTIVE_POLL_INTERVAL_S": "0.2",
        "INDUCTIVE_ADMIN_TOKEN": ADMIN,
    }


def _index(server: ServerProcess) -> dict[str, dict[str, str]]:
    response = httpx.post(
        f"{server.url}/v2/repository/index",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    return {e["version"]: e for e in response.json() if e["name"] == MODEL and "version" in e}


def _ready(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200


def _served(server: ServerProcess) -> list[str]:
    return list(httpx.get(f"{server.url}/v2/models/{MODEL}", timeout=5).json()["versions"])


def _object_key(store: ModelStore, *parts: str) -> str:
    prefix = store.uri.removeprefix("s3://").partition("/")[2]
    return "/".join((prefix, MODEL, *parts))


def test_versions_are_cached_verified_and_corrupted_bytes_never_load(
    s3_store: ModelStore, seaweed: SeaweedS3, tmp_path: Path
) -> None:
    publish_v1_stable(s3_store.uri, tmp_path)
    cache = tmp_path / "cache"
    with (
        running_server(tmp_path / "unused", tmp_path, _env(s3_store, cache)) as server,
        LoadPool(server.url, MODEL, [BODY], rps=80, workers=4, check=check_sum) as load,
    ):
        # What is served was synced into the cache, byte for byte, with its manifest.
        synced = cache / MODEL / "1"
        assert (synced / "model.onnx").read_bytes() == artifact(tmp_path, 1).read_bytes()
        assert (synced / "manifest.json").is_file()

        # v2 is published (held back: stable is v1), then one byte of its model rots in S3.
        assert add_onnx(s3_store, MODEL, artifact(tmp_path, 2)) == 2
        client, key = seaweed.client(), _object_key(s3_store, "2", "model.onnx")
        data = bytearray(client.get_object(Bucket=seaweed.bucket, Key=key)["Body"].read())
        data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
        client.put_object(Bucket=seaweed.bucket, Key=key, Body=bytes(data))
        s3_store.promote(MODEL, 2)
        eventually(lambda: _index(server).get("2", {}).get("state") == "FAILED", 20, "v2 FAILED")
        time.sleep(1.0)  # more polls: the failed version is not retried, v1 keeps serving
        reason = _index(server)["2"]["reason"]
        assert _served(server) == ["1"]
        assert _ready(server)
        metrics = server.metrics()

        # A good v3, promoted, replaces v1.
        assert add_onnx(s3_store, MODEL, artifact(tmp_path, 3)) == 3
        s3_store.promote(MODEL, 3)
        load.first_served(3, time.monotonic(), timeout=20)

        # The replica's cached copy of v1 rots; going back to v1 must not trust it.
        cached_v1 = synced / "model.onnx"
        rotten = bytearray(cached_v1.read_bytes())
        rotten[len(rotten) // 2] ^= 0xFF
        cached_v1.write_bytes(bytes(rotten))
        s3_store.promote(MODEL, 1)
        load.first_served(1, time.monotonic(), timeout=20)
        records = load.stop()
        log = server.log()

    for words in ("IntegrityError", "'model.onnx'", "sha256"):
        assert words in reason, reason
    assert metrics[f'inductive_model_load_failures_total{{model="{MODEL}"}}'] == 1
    assert metrics[f'inductive_model_state{{model="{MODEL}",state="FAILED",version="2"}}'] == 1
    assert f"{MODEL} v2 failed to load" in log
    # Nothing of the damaged version stays in the cache, not even a partial download.
    assert sorted(p.name for p in (cache / MODEL).iterdir()) == ["1", "3"]
    assert f"cached copy of {MODEL} v1 is damaged, fetching again" in log
    assert cached_v1.read_bytes() == artifact(tmp_path, 1).read_bytes()
    assert [r.error for r in records if r.error] == []  # check_sum: v1 computed as v1
    assert {r.version for r in records} == {1, 3}


def test_store_outage_under_load_keeps_serving_and_ready_and_polling_recovers(
    s3_store: ModelStore, seaweed: SeaweedS3, tmp_path: Path
) -> None:
    assert add_onnx(s3_store, MODEL, artifact(tmp_path, 1), config=CONFIG) == 1
    env = _env(s3_store, tmp_path / "cache")
    try:
        with (
            running_server(tmp_path / "unused", tmp_path, env) as server,
            LoadPool(server.url, MODEL, [BODY], rps=80, workers=4, check=check_sum) as load,
        ):
            time.sleep(0.5)
            seaweed.stop()
            outage_started = time.monotonic()
            ready_during_outage = []
            while time.monotonic() - outage_started < 2.5:
                ready_during_outage.append(_ready(server))
                time.sleep(0.2)
            failures_during_outage = server.metrics()["inductive_store_poll_failures_total"]
            seaweed.start()
            assert add_onnx(s3_store, MODEL, artifact(tmp_path, 2)) == 2
            load.first_served(2, time.monotonic(), timeout=30)
            time.sleep(0.3)
            records = load.stop()
            log = server.log()
    finally:
        seaweed.start()  # the session's server is shared: never leave it stopped
    assert all(ready_during_outage)
    assert len(ready_during_outage) >= 3
    assert failures_during_outage >= 1
    assert "store poll failed" in log
    assert [r.error for r in records if r.error] == []
    during = [r for r in records if outage_started <= r.start < outage_started + 2.5]
    assert len(during) > 100
    assert {r.version for r in during} == {1}
    assert max(records, key=lambda r: r.start).version == 2


def test_a_version_cut_off_by_an_outage_is_loaded_when_the_store_returns(
    s3_store: ModelStore, seaweed: SeaweedS3, tmp_path: Path
) -> None:
    assert add_onnx(s3_store, MODEL, artifact(tmp_path, 1), config=CONFIG) == 1
    # ~150 MB: its download lasts long enough to be cut off by stopping the store.
    big = models.slow_model(tmp_path, width=6144, depth=1)
    cached = tmp_path / "cache" / MODEL
    with running_server(tmp_path / "unused", tmp_path, _env(s3_store, cached.parent)) as server:
        try:
            assert add_onnx(s3_store, MODEL, big) == 2
            # The download has begun once something besides v1 appears in the cache.
            deadline = time.monotonic() + 20
            while {p.name for p in cached.iterdir()} == {"1"} and time.monotonic() < deadline:
                time.sleep(0.002)
            seaweed.stop()
            eventually(lambda: _index(server)["2"]["state"] != "LOADING", 20, "v2 loaded")
            outcome = _index(server)["2"]
            # Checked while the store is still down: once it is back, v2 may load at once.
            served_during_outage = _served(server)
        finally:
            seaweed.start()
        if outcome["state"] == "READY":
            pytest.skip("the download finished before the store stopped: no outage to recover")
        assert served_during_outage == ["1"]
        assert outcome["state"] == "UNAVAILABLE", outcome
        eventually(lambda: _served(server) == ["2"], 8, "v2 served once the store is back")
    assert "StoreUnavailableError" in outcome["reason"], outcome["reason"]


def test_a_policy_change_published_with_a_version_never_serves_a_held_back_one(
    s3_store: ModelStore, tmp_path: Path
) -> None:
    publish_v1_stable(s3_store.uri, tmp_path)
    assert add_onnx(s3_store, MODEL, artifact(tmp_path, 2)) == 2  # held back: stable is v1
    big = models.slow_model(tmp_path, width=4096, depth=1)  # 64 MB: uploads for ~1 s
    env = {**_env(s3_store, tmp_path / "cache"), "INDUCTIVE_POLL_INTERVAL_S": "0.1"}
    with running_server(tmp_path / "unused", tmp_path, env) as server:
        assert add_onnx(s3_store, MODEL, big, config=CONFIG) == 3
        eventually(lambda: _served(server) == ["3"], 30, "v3 served")
        loaded = sorted(_index(server))
    assert loaded == ["1", "3"], "the server loaded versions beyond v1 and v3"
