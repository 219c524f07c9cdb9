"""`INDUCTIVE_PRECISION` picks a published variant; a variant with FP16 I/O is fed and answered
in the datatypes the manifest promises (FP32), so clients never notice which file serves."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from model_store import onnx_signature, open_store
from model_store.schema import Manifest, Producer, Variant
from tests.service import models
from tests.service.helpers import running_server


def test_fp16_variant_serves_the_fp32_signature(tmp_path: Path) -> None:
    full = models.add_model(tmp_path, offset=0.0)
    # Offset 1 marks the variant, so the test sees which file answered.
    half = models.add_model(tmp_path, offset=1.0, name="add_half", half=True)
    inputs, outputs = onnx_signature(full)
    manifest = Manifest(
        name="add",
        inputs=inputs,
        outputs=outputs,
        producer=Producer(package="tests"),
        variants={"fp16": Variant(file="model.fp16.onnx", precision="fp16")},
    )
    store = tmp_path / "store"
    open_store(str(store)).publish("add", {"model.onnx": full, "model.fp16.onnx": half}, manifest)
    body = {"inputs": [{"name": n, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
                       for n in ("x", "y")]}  # fmt: skip
    for precision, offset in (("fp32", 0.0), ("fp16", 1.0)):
        with running_server(store, tmp_path, {"INDUCTIVE_PRECISION": precision}) as server:
            doc = httpx.post(f"{server.url}/v2/models/add/infer", json=body).json()
            # The console says which file serves.
            [add] = httpx.get(f"{server.url}/console/api/models").json()["models"]
            assert add["versions"][0]["precision"] == precision
        (out,) = doc["outputs"]
        assert out["datatype"] == "FP32", precision
        np.testing.assert_array_equal(out["data"], np.array([2, 4, 6, 8]) + offset)
