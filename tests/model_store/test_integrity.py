"""verify, materialize and the external-data check catch every tampering we can think of."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model_store import (
    IntegrityError,
    ModelStore,
    UnsafeModelError,
    check_external_data,
)
from tests.model_store.helpers import manifest_for, write_escaping_model


@pytest.fixture
def version_dir(store: ModelStore, external_model: Path) -> Path:
    data = external_model.with_name("model.onnx.data")
    files = {"model.onnx": external_model, "model.onnx.data": data}
    store.publish("m", files, manifest_for("m"))
    return Path(store.uri) / "m" / "1"


def test_an_intact_version_verifies_and_materializes_in_place(
    store: ModelStore, version_dir: Path, tmp_path: Path
) -> None:
    store.verify("m", 1)
    assert store.materialize("m", "latest", tmp_path / "cache") == version_dir
    assert check_external_data(version_dir / "model.onnx", version_dir) == [
        version_dir / "model.onnx.data"
    ]


def test_one_flipped_byte_is_detected_and_named(store: ModelStore, version_dir: Path) -> None:
    data = version_dir / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[7] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=r"'model\.onnx\.data' has sha256"):
        store.verify("m", 1)
    with pytest.raises(IntegrityError, match=r"model\.onnx\.data"):
        store.materialize("m", 1, version_dir.parent / "cache")


def test_a_truncated_file_is_detected(store: ModelStore, version_dir: Path) -> None:
    with (version_dir / "model.onnx.data").open("r+b") as f:
        f.truncate(3)
    with pytest.raises(IntegrityError, match="has 3 bytes"):
        store.verify("m", 1)


def test_missing_and_unlisted_files_are_detected(store: ModelStore, version_dir: Path) -> None:
    (version_dir / "extra.onnx").write_bytes(b"not listed")
    with pytest.raises(IntegrityError, match=r"'extra\.onnx' is not listed"):
        store.verify("m", 1)
    (version_dir / "extra.onnx").unlink()
    (version_dir / "model.onnx.data").unlink()
    with pytest.raises(IntegrityError, match=r"'model\.onnx\.data' is missing"):
        store.verify("m", 1)


def test_a_symlink_in_a_version_is_refused(
    store: ModelStore, version_dir: Path, tmp_path: Path
) -> None:
    data = version_dir / "model.onnx.data"
    elsewhere = tmp_path / "elsewhere.data"
    shutil.move(data, elsewhere)
    data.symlink_to(elsewhere)
    with pytest.raises(UnsafeModelError, match="symlink"):
        store.verify("m", 1)
    with pytest.raises(UnsafeModelError, match="symlink"):
        store.materialize("m", 1, tmp_path / "cache")


def test_a_symlinked_version_directory_is_not_a_version(
    store: ModelStore, version_dir: Path
) -> None:
    (version_dir.parent / "2").symlink_to(version_dir)
    assert store.list_versions("m") == [1]


def test_a_tampered_manifest_is_refused(store: ModelStore, version_dir: Path) -> None:
    manifest = version_dir / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"version": 1', '"version": 7'))
    with pytest.raises(IntegrityError, match="manifest says m v7"):
        store.manifest("m", 1)


@pytest.mark.parametrize(
    "location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "C:secret", "a\\..\\b"]
)
def test_check_external_data_refuses_locations_outside_the_version(
    tmp_path: Path, location: str
) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 48)
    model = write_escaping_model(tmp_path / "version", location)
    with pytest.raises(UnsafeModelError, match="outside the version"):
        check_external_data(model, model.parent)


def test_check_external_data_refuses_a_symlinked_data_file(tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 48)
    model = write_escaping_model(tmp_path / "version", "weights.bin")
    (model.parent / "weights.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(UnsafeModelError, match="symlink"):
        check_external_data(model, model.parent)


def test_check_external_data_reports_a_missing_data_file(tmp_path: Path) -> None:
    model = write_escaping_model(tmp_path / "version", "weights.bin")
    with pytest.raises(IntegrityError, match="missing"):
        check_external_data(model, model.parent)
