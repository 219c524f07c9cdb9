"""The four demo families as our training package exports them (untrained, tiny sizes: answers,
not accuracy, are compared) answer over gRPC exactly as over HTTP: the CNN and the ResNet on
images, the GRU and the transformer on sequences of mixed lengths (ragged: padded into one
batch, lengths filled by the server), with classification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.http as triton_http

from model_store.schema import BatchingConfig, ModelConfig, RaggedInput
from tests.service.grpc.clients import client, http_client, http_inputs, inputs
from tests.service.helpers import publish, running_server

pytest.importorskip("torch")

FAMILIES = ("cnn", "resnet", "gru", "transformer")


def _export(name: str, directory: Path) -> tuple[Path, ModelConfig, tuple[str, ...]]:
    from tests.training.helpers import tiny_images, tiny_sequences
    from training.export import export_onnx
    from training.models import model_entry
    from training.pipeline import build_model

    entry = model_entry(name)
    data = tiny_images(8, 8) if entry.input_kind == "image" else tiny_sequences(8, 8)
    model = build_model(name, data, **entry.tiny_config).eval()
    path = export_onnx(model, data.test.subset(np.arange(3)), directory / name)
    ragged: tuple[RaggedInput, ...] = ()
    if entry.input_kind == "sequence":  # as training/publish.py configures sequence models
        ragged = (RaggedInput(input="x", axis=1, pad_value=0.0, lengths_input="lengths"),)
    config = ModelConfig(
        batching=BatchingConfig(max_batch_size=16, max_queue_delay_ms=5), ragged_inputs=ragged
    )
    return path, config, data.labels


@pytest.mark.slow
def test_demo_families_answer_over_grpc_as_over_http(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for name in FAMILIES:
        path, config, labels = _export(name, tmp_path)
        publish(store, name, path, config=config, labels=labels)
    rng = np.random.default_rng(7)
    requests = {
        "cnn": [{"x": rng.random((3, 1, 28, 28), dtype=np.float32)}],
        "resnet": [{"x": rng.random((2, 1, 28, 28), dtype=np.float32)}],
        "gru": [{"x": rng.standard_normal((2, t, 2), np.float32)} for t in (3, 9)],
        "transformer": [{"x": rng.standard_normal((2, t, 2), np.float32)} for t in (4, 7)],
    }
    with running_server(store, tmp_path, {"INDUCTIVE_MODEL_CONTROL_MODE": "none"}) as server:
        over_grpc, over_http = client(server), http_client(server)
        for name, batches in requests.items():
            for arrays in batches:
                want = over_http.infer(
                    name,
                    http_inputs(arrays),
                    outputs=[triton_http.InferRequestedOutput("logits", binary_data=True)],
                ).as_numpy("logits")
                got = over_grpc.infer(name, inputs(arrays)).as_numpy("logits")
                assert got.dtype == want.dtype == np.float32, name
                np.testing.assert_array_equal(got, want, err_msg=name)
                top = over_grpc.infer(
                    name,
                    inputs(arrays),
                    outputs=[triton.InferRequestedOutput("logits", class_count=1)],
                ).as_numpy("logits")
                assert [int(row[0].split(b":")[1]) for row in top] == want.argmax(axis=1).tolist()
