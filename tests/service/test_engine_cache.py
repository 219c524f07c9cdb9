"""TensorRT engine caches are keyed by the sha256 of the file a session is built from (the options
ONNX Runtime receives; TensorRT itself needs a GPU, see tests/gpu)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from model_store.schema import FileEntry, Manifest, Producer, TensorSpec
from service.runtime.engine_cache import file_sha256, version_providers
from service.runtime.providers import ProviderChoice, tensorrt_options
from service.settings import Settings

SHA_V1 = "1" * 64
SHA_V2 = "2" * 64
CUDA = ("CUDAExecutionProvider", {"device_id": 0})


def _tensorrt_choice(cache: Path | None) -> ProviderChoice:
    settings = Settings(providers="tensorrt", trt_engine_cache=str(cache) if cache else None)
    trt = ("TensorrtExecutionProvider", tensorrt_options(settings))
    return ProviderChoice("tensorrt", [trt, CUDA, "CPUExecutionProvider"], on_gpu=True)


def _trt_options(providers: Sequence[object]) -> dict[str, object]:
    (options,) = [p[1] for p in providers if isinstance(p, tuple) and p[0].startswith("Tensorrt")]
    return options


def test_each_file_gets_its_own_engine_directory_under_the_root(tmp_path: Path) -> None:
    choice = _tensorrt_choice(tmp_path / "engines")
    first = _trt_options(version_providers(choice, SHA_V1))
    again = _trt_options(version_providers(choice, SHA_V1))
    other = _trt_options(version_providers(choice, SHA_V2))
    assert first["trt_engine_cache_enable"] is True
    assert first["trt_engine_cache_path"] == str(tmp_path / "engines" / SHA_V1)
    assert again == first, "a reload of the same file must find the same engine directory"
    assert other["trt_engine_cache_path"] == str(tmp_path / "engines" / SHA_V2)
    assert (tmp_path / "engines" / SHA_V1).is_dir()
    # The CUDA and CPU fallbacks are untouched, and the process's choice is not modified.
    assert version_providers(choice, SHA_V1)[1:] == [CUDA, "CPUExecutionProvider"]
    assert _trt_options(choice.providers)["trt_engine_cache_path"] == str(tmp_path / "engines")


def test_without_a_cache_or_without_tensorrt_nothing_changes(tmp_path: Path) -> None:
    no_cache = _tensorrt_choice(None)
    assert version_providers(no_cache, SHA_V1) == no_cache.providers
    assert "trt_engine_cache_path" not in _trt_options(no_cache.providers)
    cpu = ProviderChoice("cpu", ["CPUExecutionProvider"], on_gpu=False)
    assert version_providers(cpu, SHA_V1) == ["CPUExecutionProvider"]
    assert (
        version_providers(_tensorrt_choice(tmp_path), None) == _tensorrt_choice(tmp_path).providers
    )


def test_the_key_is_the_sha256_the_manifest_records_for_the_served_file() -> None:
    spec = TensorSpec(name="x", datatype="FP32", shape=(-1, 4))
    manifest = Manifest(
        name="m",
        version=3,
        files=(
            FileEntry(path="model.onnx", sha256=SHA_V1, size=10),
            FileEntry(path="model.fp16.onnx", sha256=SHA_V2, size=5),
        ),
        inputs=(spec,),
        outputs=(spec,),
        producer=Producer(package="test"),
    )
    assert file_sha256(manifest, "model.onnx") == SHA_V1
    assert file_sha256(manifest, "model.fp16.onnx") == SHA_V2
    assert file_sha256(manifest, "missing.onnx") is None
