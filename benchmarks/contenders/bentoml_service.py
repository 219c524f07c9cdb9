"""A BentoML (1.4.40) service serving an ONNX model with ONNX Runtime (one intra-op thread), with
BentoML's adaptive batching.

Run inside the BentoML venv with `bentoml serve bentoml_service:OnnxService` by
benchmarks/contenders/peers.py; never imported by the suite. `bentoml serve` takes no
arguments for the service, so the settings come from the environment (PEER_*).

The endpoint takes the V2 JSON request body unchanged: its `inputs` list is the API's batchable
argument, so BentoML's dispatcher batches the tensors of many requests into one list and splits
the answers back. It answers with that request's list of V2 output tensors (BentoML returns a
batchable API's slice, not an object around it). Batching a list along its length needs one
tensor per request and one per answer: models with one input and one output only.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np
import onnxruntime as ort

_DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
NAME = os.environ["PEER_MODEL_NAME"]


@bentoml.service(
    workers=int(os.environ.get("PEER_WORKERS", "1")),
    logging={"access": {"enabled": False}},
)
class OnnxService:
    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.environ["PEER_MODEL_PATH"], options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        self.names = [o.name for o in self.session.get_outputs()]

    @bentoml.api(
        route=f"/v2/models/{NAME}/infer",
        batchable=os.environ.get("PEER_BATCHABLE", "true") == "true",
        max_batch_size=int(os.environ.get("PEER_MAX_BATCH_SIZE", "32")),
        max_latency_ms=int(os.environ.get("PEER_MAX_LATENCY_MS", "1000")),
    )
    def inputs(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        x = np.concatenate(
            [
                np.asarray(t["data"], dtype=_DTYPES[t["datatype"]]).reshape(t["shape"])
                for t in inputs
            ]
        )
        (y,) = self.session.run(self.names[:1], {self.input: x})
        return [
            {"name": self.names[0], "datatype": "FP32", "shape": [1, *y.shape[1:]],
             "data": row.ravel().tolist()}
            for row in y
        ]  # fmt: skip
