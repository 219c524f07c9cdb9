"""Small pure functions of the service: variant choice, CLI flags, inference paths."""

from __future__ import annotations

import pytest

from model_store.schema import Manifest, Producer, TensorSpec, Variant
from service.__main__ import parse_args
from service.http.infer import parse_infer_path
from service.runtime.session import model_file_for
from service.settings import Settings


def test_variant_by_precision() -> None:
    spec = TensorSpec(name="x", datatype="FP32", shape=(-1, 4))
    manifest = Manifest(
        name="m",
        version=1,
        inputs=(spec,),
        outputs=(spec,),
        producer=Producer(package="test"),
        variants={"half": Variant(file="model.fp16.onnx", precision="fp16")},
    )
    assert model_file_for(manifest, "fp32", on_gpu=True) == "model.onnx"
    assert model_file_for(manifest, "fp16", on_gpu=False) == "model.fp16.onnx"
    assert model_file_for(manifest, "auto", on_gpu=True) == "model.fp16.onnx"
    assert model_file_for(manifest, "auto", on_gpu=False) == "model.onnx"
    assert model_file_for(manifest, "int8", on_gpu=False) == "model.onnx"  # none: the main file


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDUCTIVE_PORT", "9000")
    monkeypatch.setenv("INDUCTIVE_STORE", "/from/env")
    settings = Settings(**parse_args(["--port", "9100", "--no-batching", "--log-format", "text"]))
    assert settings.port == 9100
    assert settings.store == "/from/env"
    assert settings.batching is False
    assert settings.log_format == "text"


def test_infer_paths() -> None:
    assert parse_infer_path("/v2/models/cnn/infer") == ("cnn", None)
    assert parse_infer_path("/v2/models/cnn/versions/3/infer") == ("cnn", "3")
    assert parse_infer_path("/v2/models/cnn/ready") is None
    assert parse_infer_path("/v2/models//infer") is None
    assert parse_infer_path("/v2/models/a/b/infer") is None
