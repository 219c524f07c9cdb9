"""The S3 backend against a real S3 server (SeaweedFS, started once per session)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from model_store import (
    IntegrityError,
    ModelStore,
    StoreError,
    StoreUnavailableError,
    open_store,
)
from model_store.backends.s3 import S3Backend
from tests.model_store.helpers import manifest_for
from tests.model_store.seaweed import SeaweedS3

pytestmark = pytest.mark.s3
REPO = Path(__file__).resolve().parents[2]


def _backend(store: ModelStore) -> S3Backend:
    assert isinstance(store.backend, S3Backend)
    return store.backend


def _files(model: Path) -> dict[str, Path]:
    return {"model.onnx": model, "model.onnx.data": model.with_name("model.onnx.data")}


def test_publish_list_verify_and_materialize(
    s3_store: ModelStore, external_model: Path, tmp_path: Path
) -> None:
    assert s3_store.list_models() == []
    assert s3_store.publish("m", _files(external_model), manifest_for("m")) == 1
    assert s3_store.publish("m", _files(external_model), manifest_for("m")) == 2
    assert s3_store.list_models() == ["m"]
    assert s3_store.list_versions("m") == [1, 2]
    assert s3_store.manifest("m", 2).version == 2
    s3_store.verify("m", 2)

    cache = tmp_path / "cache"
    local = s3_store.materialize("m", "latest", cache)
    assert local == cache / "m" / "2"
    assert (local / "model.onnx").read_bytes() == external_model.read_bytes()
    assert sorted(p.name for p in local.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "model.onnx.data",
    ]
    # A verified cached copy is reused as it is…
    inode = (local / "model.onnx.data").stat().st_ino
    assert s3_store.materialize("m", 2, cache) == local
    assert (local / "model.onnx.data").stat().st_ino == inode
    # …and a damaged one is fetched again.
    (local / "model.onnx.data").write_bytes(b"garbage")
    assert s3_store.materialize("m", 2, cache) == local
    assert (local / "model.onnx.data").read_bytes() == (
        external_model.with_name("model.onnx.data").read_bytes()
    )
    assert not [p for p in (cache / "m").iterdir() if p.name.startswith(".")]


def test_a_corrupted_object_is_detected(
    s3_store: ModelStore, model_file: Path, tmp_path: Path
) -> None:
    s3_store.publish("m", {"model.onnx": model_file}, manifest_for("m"))
    backend = _backend(s3_store)
    raw = bytearray(model_file.read_bytes())
    raw[-1] ^= 0xFF
    backend.client.put_object(
        Bucket=backend.bucket, Key=backend._key("m", "1", "model.onnx"), Body=bytes(raw)
    )
    with pytest.raises(IntegrityError, match=r"'model\.onnx' has sha256"):
        s3_store.verify("m", 1)
    with pytest.raises(IntegrityError, match="does not match"):
        s3_store.materialize("m", 1, tmp_path / "cache")
    assert not (tmp_path / "cache" / "m" / "1").exists()


def test_an_unfinished_claim_is_skipped_invisible_and_cleaned(
    s3_store: ModelStore, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = _backend(s3_store)
    s3_store.publish("m", {"model.onnx": model_file}, manifest_for("m"))
    # What a publisher killed after claiming 2 and uploading part of it leaves behind.
    backend.client.put_object(Bucket=backend.bucket, Key=backend._key("m", ".claims", "2"))
    backend.client.put_object(
        Bucket=backend.bucket, Key=backend._key("m", "2", "model.onnx"), Body=b"partial"
    )
    assert s3_store.list_versions("m") == [1]
    assert s3_store.resolve("m") == 1
    assert s3_store.publish("m", {"model.onnx": model_file}, manifest_for("m")) == 3
    assert s3_store.list_versions("m") == [1, 3]

    partial_key = backend._key("m", "2", "model.onnx")
    assert s3_store.gc("m", keep=5) == []
    assert backend._get(partial_key) is not None  # too recent: its publisher may be alive
    monkeypatch.setattr("model_store.backends.s3.ABANDONED_AFTER", timedelta(0))
    assert s3_store.gc("m", keep=5) == []
    assert backend._get(partial_key) is None
    # The number stays burnt: the claim outlives the cleanup.
    assert s3_store.publish("m", {"model.onnx": model_file}, manifest_for("m")) == 4


def test_concurrent_publishers_get_distinct_versions(
    s3_store: ModelStore, seaweed: SeaweedS3, model_file: Path
) -> None:
    env = {**os.environ, **seaweed.env()}
    per_process = 4
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.model_store.publisher",
                s3_store.uri,
                "m",
                str(per_process),
                str(model_file),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    claimed = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        claimed += [int(v) for v in out.split()]
    assert sorted(claimed) == list(range(1, 2 * per_process + 1))
    assert s3_store.list_versions("m") == sorted(claimed)
    for version in claimed:
        s3_store.verify("m", version)


def test_aliases_and_gc(s3_store: ModelStore, model_file: Path) -> None:
    for _ in range(3):
        s3_store.publish("m", {"model.onnx": model_file}, manifest_for("m"))
    s3_store.promote("m", 1)
    s3_store.promote("m", 3)
    assert s3_store.rollback("m") == 1
    assert s3_store.resolve("m", "stable") == 1
    # Conditional writes: concurrent promotes of different aliases all land.
    aliases = [f"a{i}" for i in range(6)]
    threads = [threading.Thread(target=s3_store.promote, args=("m", 2, a)) for a in aliases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert s3_store.aliases("m") == {"stable": 1, **dict.fromkeys(aliases, 2)}
    assert s3_store.gc("m", keep=1) == []
    s3_store.promote("m", 3, alias="a0")
    s3_store.promote("m", 3, alias="a1")
    assert s3_store.gc("m", keep=1) == []  # 2 is still aliased by a2…a5
    s3_store.set_config("m", s3_store.config("m"))
    assert s3_store.list_versions("m") == [1, 2, 3]


def test_store_down_raises_unavailable_then_recovers(
    s3_store: ModelStore, seaweed: SeaweedS3, model_file: Path, tmp_path: Path
) -> None:
    s3_store.publish("m", {"model.onnx": model_file}, manifest_for("m"))
    seaweed.stop()
    try:
        with pytest.raises(StoreUnavailableError):
            s3_store.list_versions("m")
        with pytest.raises(StoreUnavailableError):
            s3_store.materialize("m", 1, tmp_path / "cache")
        with pytest.raises(StoreUnavailableError):
            s3_store.publish("m", {"model.onnx": model_file}, manifest_for("m"))
    finally:
        seaweed.start()
    assert s3_store.list_versions("m") == [1]
    assert s3_store.publish("m", {"model.onnx": model_file}, manifest_for("m")) == 2
    s3_store.materialize("m", 2, tmp_path / "cache")


def test_without_boto3_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(StoreError, match=r"pip install 'inductive\[s3\]'"):
        open_store("s3://bucket/prefix")
