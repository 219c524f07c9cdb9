"""Traffic capture from a real server (`INDUCTIVE_CAPTURE_*`) into a directory or an S3 prefix:
the shards read back as training data (`read_shard`, then `Shard.check` once labelled), the rate
and size bounds hold, and a target that cannot be written never hurts serving."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from model_store import add_onnx, open_store
from model_store.prefix import open_prefix
from model_store.shards import Shard, read_shard
from service.capture.shards import Captured, build_shard
from tests.e2e.test_canary import eventually
from tests.model_store.seaweed import SeaweedS3
from tests.service import models
from tests.service.conftest import RAGGED_CONFIG
from tests.service.helpers import ServerProcess, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.s3])])
def capture_target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, str]]]:
    """(capture URI, environment): a fresh directory, or a fresh prefix in SeaweedFS."""
    if request.param == "local":
        yield str(tmp_path / "captures"), {}
        return
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)  # for open_prefix in this process
    seaweed.start()
    yield seaweed.uri(f"t{uuid.uuid4().hex[:12]}/captures"), seaweed.env()


def build_store(tmp_path: Path) -> Path:
    """clf (one input: captured), ragged (sequences: captured), add (two inputs: not)."""
    store = open_store(tmp_path / "store")
    add_onnx(store, "clf", models.classifier_model(tmp_path))
    add_onnx(store, "ragged", models.ragged_model(tmp_path), config=RAGGED_CONFIG)
    add_onnx(store, "add", models.add_model(tmp_path))
    return Path(store.uri)


def capture_env(uri: str, env: dict[str, str], **settings: object) -> dict[str, str]:
    chosen = {"sample_rate": 1, "shard_samples": 50, "flush_interval_s": 0.3,
              "max_samples_per_s": 100_000, **settings}  # fmt: skip
    return {
        **env,
        "INDUCTIVE_MODEL_CONTROL_MODE": "none",
        "INDUCTIVE_CAPTURE_URI": uri,
        **{f"INDUCTIVE_CAPTURE_{k.upper()}": str(v) for k, v in chosen.items()},
    }


def infer(client: httpx.Client, model: str, inputs: list[dict[str, Any]], rid: str) -> Any:
    body = orjson.dumps({"id": rid, "inputs": inputs})
    response = client.post(f"/v2/models/{model}/infer", content=body)
    assert response.status_code == 200, response.text
    return response.json()


def tensor(name: str, x: np.ndarray) -> dict[str, Any]:
    return {"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return server.metrics().get(f"{name}{{{shown}}}" if shown else name, 0.0)


def written(server: ServerProcess, model: str) -> float:
    labels = {"model": model, "version": "1", "outcome": "written"}
    return metric(server, "inductive_capture_samples_total", **labels)


def shards_of(uri: str, model: str) -> list[Shard]:
    prefix = open_prefix(uri)
    return [read_shard(prefix.read(n), n) for n in prefix.names(".npz") if n.startswith(model)]


def test_captured_shards_read_back_as_training_data(
    capture_target: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    uri, env = capture_target
    rng = np.random.default_rng(0)
    images = {f"c{i}": rng.random((1 + i % 2, 4), dtype=np.float32) for i in range(60)}
    sequences = {f"s{i}": rng.random((1, 1 + i % 6, 2), dtype=np.float32) for i in range(12)}
    answers: dict[str, np.ndarray] = {}
    with running_server(build_store(tmp_path), tmp_path, capture_env(uri, env)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for rid, x in images.items():
                doc = infer(client, "clf", [tensor("x", x)], rid)
                answers[rid] = np.asarray(doc["outputs"][0]["data"], np.float32).reshape(-1, 3)
            for rid, x in sequences.items():
                doc = infer(client, "ragged", [tensor("x", x)], rid)
                answers[rid] = np.asarray(doc["outputs"][0]["data"], np.float32).reshape(-1, 2)
            x2 = np.ones((1, 4), np.float32)
            infer(client, "add", [tensor("x", x2), tensor("y", x2)], "a0")
        samples = sum(len(x) for x in images.values())
        eventually(lambda: written(server, "clf") == samples, "every clf sample written")
        eventually(lambda: written(server, "ragged") == 12, "every sequence written")
        skipped = metric(server, "inductive_capture_skipped_versions_total", model="add")
        log = server.log()

    assert skipped == 1
    assert "model add v1 is not captured: it takes 2 inputs; a shard's x holds one" in log
    clf = shards_of(uri, "clf-v1-")
    assert len(clf) >= 2  # 50 samples a shard
    rows: dict[str, list[np.ndarray]] = {}
    for shard in clf:
        assert str(shard.meta["model"]) == "clf"
        assert set(shard.meta["version"].tolist()) == {1}
        assert not shard.labelled
        for i, rid in enumerate(shard.meta["request_id"].tolist()):
            rows.setdefault(rid, []).append(i)
        for rid in set(shard.meta["request_id"].tolist()):
            picked = shard.meta["request_id"] == rid
            assert np.array_equal(shard.x[picked], images[rid])
            assert np.allclose(shard.outputs["logits"][picked], answers[rid])
        # Labelled (here by the served answer), a shard is training data for the model.
        labelled = Shard(shard.name, shard.x, shard.outputs["logits"].argmax(axis=1))
        labelled.check((4,), 3, sequence=False)
    assert set(rows) == set(images)

    seen = []
    for ragged in shards_of(uri, "ragged-v1-"):
        assert ragged.lengths is not None
        assert ragged.x.shape[1] == ragged.lengths.max()  # padded to its longest sequence
        for i, rid in enumerate(ragged.meta["request_id"].tolist()):
            sent = sequences[rid][0]
            assert ragged.lengths[i] == len(sent)
            assert np.array_equal(ragged.x[i, : len(sent)], sent)
            assert not ragged.x[i, len(sent) :].any()
            assert np.allclose(ragged.outputs["mean"][i], answers[rid][0])
            seen.append(rid)
        labelled = Shard(ragged.name, ragged.x, np.zeros(len(ragged), np.int64), ragged.lengths)
        labelled.check((-1, 2), 2, sequence=True)
    assert sorted(seen) == sorted(sequences)


def test_the_rate_and_size_bounds_hold_in_a_real_server(tmp_path: Path) -> None:
    """5 samples a second at most, in shards of 5, and bytes for one shard and a half: the
    second shard stops the capture."""
    one = build_shard("clf", 1, "x", None, [
        Captured(None, {"x": np.ones((5, 4), np.float32)},  # type: ignore[arg-type]
                 {"logits": np.ones((5, 3), np.float32)}, "r0000", 0.0, 5, 0)
    ])  # fmt: skip
    uri = tmp_path / "captures"
    env = capture_env(str(uri), {}, max_samples_per_s=5, shard_samples=5,
                      max_bytes=len(one) * 3 // 2)  # fmt: skip
    x = [tensor("x", np.ones((1, 4), np.float32))]
    sent = 0
    with running_server(build_store(tmp_path), tmp_path, env) as server:
        started = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            # Until the second shard hits the size bound (how long that takes is the machine's
            # business: 10 samples at 5 a second), then 20 more that find the capture stopped.
            while metric(server, "inductive_capture_stopped") == 0:
                assert time.monotonic() - started < 60, "the size bound never stopped the capture"
                for _ in range(20):
                    infer(client, "clf", x, f"r{sent:04d}")
                    sent += 1
            for _ in range(20):
                infer(client, "clf", x, f"r{sent:04d}")
                sent += 1
        elapsed = time.monotonic() - started
        labels = {"model": "clf", "version": "1"}
        queued, limited, stopped = (
            metric(server, "inductive_capture_requests_total", **labels, outcome=outcome)
            for outcome in ("queued", "rate_limited", "stopped")
        )
        log = server.log()

    assert limited > 0
    assert queued <= 5 * (elapsed + 1) + 1  # a second's worth at once, then 5 a second
    assert stopped >= 20
    assert queued + limited + stopped == sent  # every request answered (infer checks the 200)
    assert [p.stat().st_size for p in uri.iterdir()] == [len(one)]
    assert log.count("capture stopped") == 1


def test_an_unwritable_directory_never_hurts_serving(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way of a directory")
    env = capture_env(str(blocker / "captures"), {}, shard_samples=5)
    x = [tensor("x", np.ones((1, 4), np.float32))]
    with running_server(build_store(tmp_path), tmp_path, env) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(50):
                infer(client, "clf", x, f"r{i}")
        labels = {"model": "clf", "version": "1", "outcome": "failed"}
        eventually(
            lambda: metric(server, "inductive_capture_samples_total", **labels) == 50,
            "every sample counted as lost",
        )
        failed = metric(server, "inductive_capture_shards_total", outcome="failed")
        assert httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200
        log = server.log()
    assert failed == 10
    assert log.count("could not be written") == 1  # at most once a minute
    assert "NotADirectoryError" in log


@pytest.mark.s3
def test_s3_down_never_hurts_serving_and_capture_resumes(
    seaweed: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    uri = seaweed.uri(f"t{uuid.uuid4().hex[:12]}/captures")
    env = capture_env(uri, seaweed.env(), shard_samples=5)
    x = [tensor("x", np.ones((1, 4), np.float32))]
    try:
        with (
            running_server(build_store(tmp_path), tmp_path, env) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            for i in range(10):
                infer(client, "clf", x, f"before{i}")
            eventually(lambda: written(server, "clf") == 10, "shards written")
            seaweed.stop()
            started = time.monotonic()
            for i in range(100):
                infer(client, "clf", x, f"during{i}")
            outage_s = time.monotonic() - started
            eventually(
                lambda: metric(server, "inductive_capture_shards_total", outcome="failed") > 0,
                "a shard lost to the outage",
            )
            seaweed.start()
            for i in range(10):
                infer(client, "clf", x, f"after{i}")
            eventually(lambda: any(
                "after" in str(s.meta["request_id"][0]) for s in shards_of(uri, "clf")
            ), "shards written again")  # fmt: skip
    finally:
        seaweed.start()  # the session's server is shared: never leave it stopped
    # 100 answers while every write waited on a store that is gone (connect retries).
    assert outage_s < 20
