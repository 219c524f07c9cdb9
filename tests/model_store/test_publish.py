"""Publishing: atomic, numbered, safe with concurrent and killed publishers, strict on input."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model_store import (
    InvalidModelNameError,
    ModelConfig,
    ModelStore,
    StoreError,
    UnsafeModelError,
    open_store,
    version_config,
)
from model_store.hashing import sha256_file
from tests.model_store.helpers import manifest_for, write_escaping_model

REPO = Path(__file__).resolve().parents[2]


def _publisher(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.model_store.publisher", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_publish_numbers_versions_and_fills_the_manifest(
    store: ModelStore, model_file: Path, tmp_path: Path
) -> None:
    card = tmp_path / "card.md"
    card.write_text("# a card\n")
    files = {"model.onnx": model_file, "docs/card.md": card}
    assert store.publish("m", files, manifest_for("m")) == 1
    assert store.publish("m", files, manifest_for("m")) == 2

    assert store.list_models() == ["m"]
    assert store.list_versions("m") == [1, 2]
    assert store.resolve("m") == 2
    assert store.resolve("m", "1") == 1
    manifest = store.manifest("m", 2)
    assert manifest.version == 2
    digest, size = sha256_file(model_file)
    assert manifest.file("model.onnx").sha256 == digest
    assert manifest.file("model.onnx").size == size
    assert {f.path for f in manifest.files} == {"model.onnx", "docs/card.md"}
    assert (Path(store.uri) / "m" / "2" / "docs" / "card.md").read_text() == "# a card\n"
    store.verify("m", 2)


def test_config_is_written_with_the_version_and_defaults_otherwise(
    store: ModelStore, model_file: Path
) -> None:
    assert store.config("m") == ModelConfig()
    config = ModelConfig(labels={"logits": ("a", "b", "c")})
    version = store.publish("m", {"model.onnx": model_file}, manifest_for("m"), config=config)
    assert store.config("m") == config
    # The version carries the config it was published with, checksummed like its other files,
    # and keeps it when the model's config moves on.
    directory = store.materialize("m", version, store.uri)
    assert version_config(directory, store.manifest("m", version)) == config
    store.set_config("m", ModelConfig())
    assert version_config(directory, store.manifest("m", version)) == config
    plain = store.publish("m", {"model.onnx": model_file}, manifest_for("m"))
    assert (
        version_config(store.materialize("m", plain, store.uri), store.manifest("m", plain)) is None
    )


@pytest.mark.parametrize(
    "key", ["../evil.onnx", "/abs.bin", "a/../../b", "a//b", ".hidden", "a\\b", "manifest.json"]
)
def test_publish_refuses_keys_outside_the_version(
    store: ModelStore, model_file: Path, key: str
) -> None:
    with pytest.raises(UnsafeModelError):
        store.publish("m", {"model.onnx": model_file, key: model_file}, manifest_for("m"))
    assert store.list_versions("m") == []


def test_publish_refuses_symlink_sources(
    store: ModelStore, model_file: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link.onnx"
    link.symlink_to(model_file)
    with pytest.raises(UnsafeModelError, match="symlink"):
        store.publish("m", {"model.onnx": link}, manifest_for("m"))


@pytest.mark.parametrize("name", ["", "Upper", "../x", "a/b", ".m", "x" * 65])
def test_invalid_model_names_are_refused(store: ModelStore, model_file: Path, name: str) -> None:
    with pytest.raises(InvalidModelNameError):
        store.publish(name, {"model.onnx": model_file}, manifest_for("ok"))
    with pytest.raises(InvalidModelNameError):
        store.list_versions(name)


def test_publish_refuses_incomplete_or_mismatched_input(
    store: ModelStore, model_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="model file"):
        store.publish("m", {"other.onnx": model_file}, manifest_for("m"))
    with pytest.raises(StoreError, match="names model"):
        store.publish("m", {"model.onnx": model_file}, manifest_for("n"))
    with pytest.raises(StoreError, match="not a regular file"):
        store.publish("m", {"model.onnx": tmp_path / "missing.onnx"}, manifest_for("m"))


def test_publish_refuses_external_data_outside_the_version(
    store: ModelStore, tmp_path: Path
) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 48)
    model = write_escaping_model(tmp_path / "src", "../secret.bin")
    with pytest.raises(UnsafeModelError, match="outside the version"):
        store.publish("m", {"model.onnx": model}, manifest_for("m"))
    assert store.list_models() == []


def test_publish_refuses_external_data_it_does_not_carry(
    store: ModelStore, external_model: Path
) -> None:
    with pytest.raises(StoreError, match="not among the published files"):
        store.publish("m", {"model.onnx": external_model}, manifest_for("m"))


def test_two_processes_publishing_at_once_get_distinct_complete_versions(
    tmp_path: Path, model_file: Path
) -> None:
    store_dir = tmp_path / "store"
    per_process = 6
    procs = [_publisher(store_dir, "m", per_process, model_file) for _ in range(2)]
    claimed = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        claimed += [int(line) for line in out.split()]
    assert sorted(claimed) == list(range(1, 2 * per_process + 1))
    store = open_store(store_dir)
    assert store.list_versions("m") == sorted(claimed)
    for version in claimed:
        store.verify("m", version)


def test_a_publisher_killed_midway_leaves_no_version_and_blocks_nothing(
    tmp_path: Path, model_file: Path
) -> None:
    store_dir = tmp_path / "store"
    blob = tmp_path / "blob.bin"
    size = 256 << 20
    with blob.open("wb") as f:
        f.truncate(size)  # sparse: cheap to create, real bytes to copy
    proc = _publisher(store_dir, "m", 1, model_file, blob)
    staging = store_dir / "m" / ".staging"
    deadline = time.monotonic() + 30
    partial = None
    while partial is None and time.monotonic() < deadline and proc.poll() is None:
        partial = (
            next((p for p in staging.glob("*/blob.bin") if 0 < p.stat().st_size < size), None)
            if staging.is_dir()
            else None
        )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial is not None, "the publisher was not caught while copying the large file"

    store = open_store(store_dir)
    assert store.list_models() == []
    assert store.list_versions("m") == []
    assert list(staging.iterdir()), "the killed publisher's staging should still be there"

    assert store.publish("m", {"model.onnx": model_file}, manifest_for("m")) == 1
    assert store.list_versions("m") == [1]
    store.verify("m", 1)
    # The next publisher removed the dead one's staging directory.
    assert not [p for p in staging.iterdir() if p.is_dir()]


def test_a_live_publishers_staging_is_not_cleaned(store: ModelStore, model_file: Path) -> None:
    staging = Path(store.uri) / "m" / ".staging"
    staging.mkdir(parents=True)
    live, dead = staging / "live", staging / "dead"
    live.mkdir()
    dead.mkdir()
    (staging / "dead.lock").touch()
    fd = os.open(staging / "live.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # The lock is per open file: a second open in this process contends like another one.
        store.publish("m", {"model.onnx": model_file}, manifest_for("m"))
        assert live.is_dir()
        assert not dead.exists()
    finally:
        os.close(fd)
