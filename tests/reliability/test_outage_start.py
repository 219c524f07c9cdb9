"""A server started while its S3 store is down serves the versions of its verified cache, says so
in its log and metrics, and catches up with the store once it answers (SeaweedFS, stopped)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from model_store import add_onnx, open_store
from model_store.schema import BatchingConfig, ModelConfig
from service.lifecycle.offline import verified_cache
from tests.reliability.clients import infer_add
from tests.reliability.waits import eventually, served_versions
from tests.service import models
from tests.service.helpers import publish, running_server

CONFIG = ModelConfig(batching=BatchingConfig(max_batch_size=8))
FROM_CACHE = "inductive_serving_from_cache"


def _offset_model(tmp_path: Path, offset: float) -> Path:
    directory = tmp_path / f"offset-{offset:g}"
    directory.mkdir()
    return models.add_model(directory, offset=offset)


@pytest.mark.s3
@pytest.mark.slow
def test_start_up_with_the_store_down_serves_the_verified_cache_then_catches_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("boto3", reason="the S3 backend needs the s3 extra")
    from tests.model_store.seaweed import SeaweedS3

    cache = tmp_path / "cache"
    with SeaweedS3(tmp_path / "seaweed") as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)  # for this process's store and the servers'
        store = open_store(s3.uri("models"))
        add_onnx(store, "add", models.add_model(tmp_path), config=CONFIG)
        add_onnx(store, "other", _offset_model(tmp_path, 7.0), config=CONFIG)
        env = {
            "INDUCTIVE_STORE": s3.uri("models"),
            "INDUCTIVE_CACHE_DIR": str(cache),
            "INDUCTIVE_POLL_INTERVAL_S": "0.5",
        }
        # A first server fills the cache, as a pod that ran before the outage did.
        with running_server(tmp_path / "unused", tmp_path / "first", env):
            pass
        assert {(c.name, c.version) for c in verified_cache(cache).versions} == {
            ("add", 1), ("other", 1),
        }  # fmt: skip
        # A copy damaged on disk is not served: `other` has none left.
        (cache / "other" / "1" / "model.onnx").write_bytes(b"not the published bytes")

        s3.stop()
        with running_server(tmp_path / "unused", tmp_path / "second", env) as server:
            x = np.arange(8, dtype=np.float32).reshape(2, 4)
            with httpx.Client() as client:
                np.testing.assert_array_equal(infer_add(client, server.url, x), x + x)
            assert served_versions(server, "add") == ["1"]
            assert served_versions(server, "other") == []
            metrics = server.metrics()
            assert metrics[FROM_CACHE] == 1
            assert metrics["inductive_store_poll_failures_total"] >= 1
            log = server.log()
            assert "serving from the verified cache" in log
            assert "(add v1) until it answers" in log
            assert "cached copy not served: other v1: IntegrityError" in log

            s3.start()
            add_onnx(store, "add", _offset_model(tmp_path, 100.0), config=CONFIG)
            eventually(lambda: served_versions(server, "add") == ["2"], 60, "v2 served")
            eventually(lambda: served_versions(server, "other") == ["1"], 30, "other fetched again")
            assert server.metrics()[FROM_CACHE] == 0
            assert "reachable again: caught up with it" in server.log()
            with httpx.Client() as client:
                np.testing.assert_array_equal(infer_add(client, server.url, x), x + x + 100)
            assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_only_copies_that_verify_are_found(tmp_path: Path) -> None:
    """The cache's layout is the local store's: <model>/<version>/ with its manifest.json."""
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path), config=CONFIG)
    publish(store, "add", _offset_model(tmp_path, 1.0), config=CONFIG)
    publish(store, "gone", _offset_model(tmp_path, 2.0))
    cache = tmp_path / "cache"
    shutil.copytree(store, cache)
    (cache / "add" / ".partial-3-abc").mkdir()  # an interrupted download
    (cache / "gone" / "1" / "manifest.json").write_text("{")
    scan = verified_cache(cache)
    assert [(c.name, c.version) for c in scan.versions] == [("add", 1), ("add", 2)]
    assert len(scan.problems) == 1
    assert scan.problems[0].startswith("gone v1: ValidationError")
    assert verified_cache(cache, frozenset({"gone"})).versions == []
    assert verified_cache(tmp_path / "no-cache").versions == []
