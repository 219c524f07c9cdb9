"""`python -m training retrain`, end to end on the real store (a directory and SeaweedFS S3):
unchanged data keeps the champion at once, a helpful shard publishes a version with the gate's
figures in its manifest, a crippled challenger is rejected with its p-value, `--force` publishes
and says so, bad shards are refused in one line, and a real server's captured traffic, labelled
with `python -m training label`, is training data for a retrain."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from benchmarks.harness.load_pool import LoadPool
from benchmarks.lifecycle_e2e import gate_steps, run_steps, summarise
from model_store import open_store
from model_store.prefix import open_prefix
from model_store.schema import VersionPolicy
from model_store.shards import read_shard
from tests.e2e.test_canary import eventually
from tests.e2e.test_capture import capture_env, metric
from tests.model_store.seaweed import SeaweedS3
from tests.service.helpers import REPO_ROOT, running_server
from tests.training.gate_data import TRAIN_ARGS, helpful_shard, images, put, rule, write_base
from training.cli import main

pytestmark = pytest.mark.slow

MODEL = "gate"


def training(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def data_uri(store_uri: str, tmp_path: Path, name: str) -> str:
    """A data place of the store's kind: a directory, or a prefix beside the S3 store's."""
    if store_uri.startswith("s3://"):
        return f"{store_uri.rsplit('/', 1)[0]}/{name}"
    return str(tmp_path / name)


def publish_v1(store_uri: str, tmp_path: Path) -> None:
    base = write_base(tmp_path / "base.npz")
    done = training("train", *TRAIN_ARGS, "--dataset", str(base), "--name", MODEL,
                    "--out", str(tmp_path / "run"), "--publish", store_uri)  # fmt: skip
    assert done.returncode == 0, done.stderr


def retrain(store_uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    return training("retrain", "--model", MODEL, "--store", store_uri, *args)


def gate_of(store_uri: str, version: int) -> dict[str, Any]:
    extra = open_store(store_uri).manifest(MODEL, version).extra
    gate: dict[str, Any] = extra["gate"]
    return gate


def test_the_gate_keeps_publishes_rejects_and_forces(store_uri: str, tmp_path: Path) -> None:
    publish_v1(store_uri, tmp_path)
    store = open_store(store_uri)
    v1 = store.manifest(MODEL, 1).extra
    assert v1["recipe"]["arch"] == "cnn"
    assert v1["recipe"]["model_config"] == {"channels": [4, 8], "hidden": 16}  # JSON, not repr
    assert v1["model_config"] == {"channels": [4, 8], "hidden": 16}
    assert v1["recipe"]["epochs"] == 8
    assert v1["recipe"]["variants"] == []
    assert v1["dataset_fingerprint"]["shards"] == []
    assert v1["forced"] is False
    frozen = store.evaluation_set(MODEL)
    assert frozen is not None
    assert v1["evaluation_set"] == {"sha256": hashlib.sha256(frozen).hexdigest(), "samples": 300}

    # The same training again is the same artifact: refused, not a second version.
    again = training("train", *TRAIN_ARGS, "--dataset", str(tmp_path / "base.npz"),
                     "--name", MODEL, "--publish", store_uri)  # fmt: skip
    assert again.returncode == 3, again.stderr
    assert "byte-identical to version 1; not published" in again.stdout
    # Unchanged data and recipe: kept at once, nothing trained.
    kept = retrain(store_uri)
    assert kept.returncode == 3, kept.stderr
    assert "champion v1 kept: data and recipe unchanged" in kept.stdout
    assert "training the challenger" not in kept.stderr
    assert store.list_versions(MODEL) == [1]

    data = data_uri(store_uri, tmp_path, "data")
    shard = helpful_shard()
    put(data, "more-0001.npz", shard)
    published = retrain(store_uri, "--data", data)
    assert published.returncode == 0, published.stdout + published.stderr
    assert "gate: published v2" in published.stdout
    assert store.list_versions(MODEL) == [1, 2]
    v2 = store.manifest(MODEL, 2).extra
    gate = v2["gate"]
    assert gate["champion_version"] == 1
    assert gate["test"] == "mcnemar-exact"
    assert gate["samples"] == 300
    assert gate["forced"] is False
    assert gate["not_worse"] is True
    assert gate["challenger_accuracy"] > gate["champion_accuracy"] + 0.1  # the shard helps
    for who in ("champion", "challenger"):
        low, high = gate[f"{who}_interval_95"]
        assert low < gate[f"{who}_accuracy"] < high
    assert gate["c"] > gate["b"]
    assert 0.0 <= gate["p_value"] <= 1.0
    assert v2["dataset_fingerprint"]["shards"] == [hashlib.sha256(shard).hexdigest()]
    assert v2["dataset_fingerprint"]["base_sha256"] == v1["dataset_fingerprint"]["base_sha256"]
    assert v2["evaluation_set"] == v1["evaluation_set"]  # judged on the same frozen set
    assert v2["recipe_fingerprint"] == v1["recipe_fingerprint"]

    # A crippled challenger (one epoch) is worse than v2: rejected, with its p-value.
    crippled = retrain(store_uri, "--data", data, "--epochs", "1")
    assert crippled.returncode == 3, crippled.stdout + crippled.stderr
    line = crippled.stdout.strip()
    assert "\n" not in line
    assert "champion v2 kept: the challenger is worse" in line
    assert "McNemar exact" in line
    assert "one-sided p=" in line
    assert store.list_versions(MODEL) == [1, 2]
    # v2's data and recipe again: nothing to do.
    assert retrain(store_uri, "--data", data).returncode == 3

    forced = retrain(store_uri, "--data", data, "--epochs", "1", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "forced (--force)" in forced.stdout
    assert store.list_versions(MODEL) == [1, 2, 3]
    v3 = store.manifest(MODEL, 3).extra
    assert v3["forced"] is True
    assert v3["gate"]["forced"] is True
    assert v3["gate"]["not_worse"] is False  # recorded as it was, published anyway
    assert v3["recipe"]["epochs"] == 1


def _npz(**arrays: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def bad_shards() -> dict[str, tuple[bytes, str]]:
    x, y = images(20, seed=9)
    nan = x.copy()
    nan[3, 0, 2, 2] = np.nan
    return {
        "shape": (_npz(x=np.zeros((20, 1, 9, 9), np.float32), y=y),
                  "x has samples of shape [1, 9, 9], the model takes [1, 8, 8]"),
        "nan": (_npz(x=nan, y=y), "x holds NaN or infinite values in 1 sample(s)"),
        "range": (_npz(x=x, y=np.full(20, 2)),
                  "labels range over [0, 2]; the model's classes are 0..1"),
        "dtype-x": (_npz(x=(x * 255).astype(np.uint8), y=y), "x must be a float array"),
        "dtype-y": (_npz(x=x, y=y.astype(np.float32)), "y must be integers"),
        "unlabelled": (_npz(x=x, y=np.full(20, -1)), "are not labelled (y = -1)"),
    }  # fmt: skip


def test_bad_shards_are_refused_in_one_line(
    store_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_v1(store_uri, tmp_path)
    store = open_store(store_uri)
    for kind, (data, expected) in bad_shards().items():
        where = data_uri(store_uri, tmp_path, f"bad-{kind}")
        put(where, "a-good.npz", helpful_shard(50))  # one good shard does not save a bad one
        put(where, f"b-{kind}.npz", data)
        capsys.readouterr()
        status = main(["retrain", "--model", MODEL, "--store", store_uri, "--data", where])
        out, err = capsys.readouterr()
        assert status == 1, (kind, out, err)
        assert err.count("\n") == 1, err
        assert err.startswith(f"error: shard b-{kind}.npz: "), err
        assert expected in err, (kind, err)
    assert store.list_versions(MODEL) == [1]
    empty = data_uri(store_uri, tmp_path, "empty")
    put(empty, "notes.txt", b"not a shard")
    assert main(["retrain", "--model", MODEL, "--store", store_uri, "--data", empty]) == 1
    assert "no .npz shards to train on" in capsys.readouterr().err


def test_captured_traffic_labelled_is_training_data(store_uri: str, tmp_path: Path) -> None:
    publish_v1(store_uri, tmp_path)
    captures = data_uri(store_uri, tmp_path, "captures")
    labelled = data_uri(store_uri, tmp_path, "labelled")
    env = capture_env(captures, {}, shard_samples=200)
    if store_uri.startswith("s3://"):
        env["INDUCTIVE_STORE"] = store_uri
    sent = 0
    with running_server(Path(store_uri), tmp_path, env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(40):
                x, _ = images(10, seed=100 + i)
                body = {"id": f"r{i}", "inputs": [{"name": "x", "shape": list(x.shape),
                        "datatype": "FP32", "data": x.ravel().tolist()}]}  # fmt: skip
                response = client.post(f"/v2/models/{MODEL}/infer", json=body)
                assert response.status_code == 200, response.text
                sent += len(x)
        labels = {"model": MODEL, "version": "1", "outcome": "written"}
        eventually(
            lambda: metric(server, "inductive_capture_samples_total", **labels) == sent,
            "every sample captured",
        )
    prefix = open_prefix(captures)
    shards = [read_shard(prefix.read(n), n) for n in prefix.names(".npz")]
    assert sum(len(s) for s in shards) == sent
    assert not any(s.labelled for s in shards)
    # The reviewers' labels: one per captured sample, in shard-name then row order.
    np.save(tmp_path / "labels.npy", np.concatenate([rule(s.x) for s in shards]))

    done = training("label", "--shards", captures, "--labels", str(tmp_path / "labels.npy"),
                    "--out", labelled)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"labelled {sent} of {sent} captured samples" in done.stdout
    written = open_prefix(labelled)
    digests = sorted(hashlib.sha256(written.read(n)).hexdigest() for n in written.names(".npz"))

    published = retrain(store_uri, "--data", labelled)
    assert published.returncode == 0, published.stdout + published.stderr
    v2 = open_store(store_uri).manifest(MODEL, 2).extra
    assert v2["dataset_fingerprint"]["shards"] == digests
    assert v2["gate"]["challenger_accuracy"] > v2["gate"]["champion_accuracy"]


def two_logits(doc: dict[str, Any]) -> str | None:
    data = (doc.get("outputs") or [{}])[0].get("data")
    return None if isinstance(data, list) and len(data) == 2 else f"bad outputs {doc}"


def test_the_gate_under_load_fails_no_request(
    store_uri: str, seaweed_server: SeaweedS3 | None, tmp_path: Path
) -> None:
    """benchmarks/lifecycle_e2e.py's gate steps on the tiny model: a kept retrain, then a
    candidate from a helpful shard through a canary to stable, under a steady load."""
    publish_v1(store_uri, tmp_path)
    store = open_store(store_uri)
    store.update_config(
        MODEL, lambda c: c.model_copy(update={"version_policy": VersionPolicy(kind="alias")})
    )
    store.promote(MODEL, 1)
    data = data_uri(store_uri, tmp_path, "data")
    put(data, "more.npz", helpful_shard())
    x, _ = images(1, seed=50)
    body = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                     "data": x.ravel().tolist()}]})  # fmt: skip
    env = {
        **(seaweed_server.env() if seaweed_server else {}),
        "INDUCTIVE_STORE": store_uri,
        "INDUCTIVE_MODEL_CONTROL_MODE": "poll",
        "INDUCTIVE_POLL_INTERVAL_S": "0.2",
    }
    with (
        running_server(tmp_path / "unused", tmp_path, env) as server,
        LoadPool(server.url, MODEL, [body], rps=50, workers=8, check=two_logits) as load,
    ):
        phases = run_steps(
            load,
            gate_steps(store_uri, data, MODEL),
            store=store,
            model=MODEL,
            env=dict(os.environ),
            log=tmp_path / "commands.log",
            dwell_s=0.5,
            hold_s=1.0,
        )
        end = time.monotonic()
        records = load.stop()
    result = summarise(phases, records, end)
    assert result["total"]["failures"] == 0, result["total"]["first_failures"]
    by_label = {p["label"]: p["stats"]["versions"] for p in result["phases"]}
    assert set(by_label["retrain, data unchanged: champion v1 kept"]) == {"1"}
    assert set(by_label["retrain + helpful shard: candidate v2 (held)"]) == {"1"}
    assert {"1", "2"} == set(by_label["canary v2 at 20 %"])
    assert store.aliases(MODEL)["stable"] == 2
    assert max(records, key=lambda r: r.start).version == 2
