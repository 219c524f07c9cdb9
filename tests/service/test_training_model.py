"""A model exported by our training package (the `cnn` architecture, untrained) is served like any
other ONNX file: tritonclient's answers equal ONNX Runtime run directly on the same file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from tests.service.helpers import publish, running_server

pytest.importorskip("torch")


@pytest.mark.slow
def test_exported_cnn_serves_like_onnx_runtime(tmp_path: Path) -> None:
    from training.data import Split
    from training.export import export_onnx
    from training.models import create_model

    model = create_model("cnn", num_classes=10).eval()
    example = Split(x=np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32),
                    y=np.zeros(4, dtype=np.int64))  # fmt: skip
    onnx_path = export_onnx(model, example, tmp_path / "cnn")
    publish(tmp_path / "store", "cnn", onnx_path, labels=[str(d) for d in range(10)])
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    (expected,) = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    with running_server(tmp_path / "store", tmp_path) as server:
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        tensor = triton.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        result = client.infer("cnn", [tensor])
        np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=1e-5, atol=1e-5)
        top = client.infer(
            "cnn", [tensor], outputs=[triton.InferRequestedOutput("logits", class_count=1)]
        ).as_numpy("logits")
        assert [int(row[0].split(b":")[1]) for row in top] == list(expected.argmax(axis=1))
