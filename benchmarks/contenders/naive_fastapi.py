"""The endpoint users write themselves: FastAPI + ONNX Runtime, one request = one session.run.

The benchmark's baseline for "what does a serving system buy me". JSON only, Open Inference
Protocol request/response shapes, one intra-op thread like every other contender.

    python benchmarks/contenders/naive_fastapi.py --model model.onnx --name cnn --port 8001
"""

from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

DTYPES = {
    "FP32": np.float32,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "BOOL": np.bool_,
}


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[Tensor]


def create_app(model_path: str, name: str) -> FastAPI:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.get(f"/v2/models/{name}/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post(f"/v2/models/{name}/infer")
    def infer(request: InferRequest) -> dict[str, object]:
        inputs: dict[str, np.ndarray] = {
            t.name: np.asarray(t.data, dtype=DTYPES[t.datatype]).reshape(t.shape)
            for t in request.inputs
        }
        names = [o.name for o in session.get_outputs()]
        values = session.run(names, inputs)
        outputs = [
            {"name": n, "shape": list(v.shape), "datatype": "FP32", "data": v.ravel().tolist()}
            for n, v in zip(names, values, strict=True)
        ]
        return {"model_name": name, "outputs": outputs}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.model, args.name), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
