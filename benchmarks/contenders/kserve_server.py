"""KServe's Python model server (kserve 0.21) serving an ONNX model with ONNX Runtime (one
intra-op thread), V2 REST (JSON and the binary tensor extension) and V2 gRPC.

Run inside the KServe venv by benchmarks/contenders/peers.py; never imported by the suite.
KServe's own flags (`--http_port`, `--grpc_port`, `--workers`, `--model_name`, ...) are read by
`kserve.model_server` itself when it is imported; this script adds `--model-path`.

KServe's Python server has no request batching of its own (KServe batches in its Go agent, a
sidecar of a Kubernetes deployment), so each request is one `session.run`: on the event loop
(KServe calls a synchronous `predict` there), or with `--predict-in-thread` in the loop's
thread pool, so that the loop reads and decodes the next requests while ONNX Runtime computes.
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve import model_server as kserve_args
from kserve.utils.utils import generate_uuid


class OnnxModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        self.ready = True
        return True

    # With --workers > 1 KServe pickles the model into each worker process: the session is not
    # picklable, so each worker opens its own.
    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "session"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.load()

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        inputs = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
        return self.respond(payload, self.session.run(self.names, inputs))

    def respond(self, payload: InferRequest, values: list[np.ndarray]) -> InferResponse:
        binary = payload.use_binary_outputs
        outputs = []
        for name, value in zip(self.names, values, strict=True):
            output = InferOutput(name=name, shape=list(value.shape), datatype="FP32")
            output.set_data_from_numpy(value, binary_data=binary)
            outputs.append(output)
        return InferResponse(
            # A JSON request without an id gets one, as KServe's own examples do.
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=binary,
        )


class ThreadedOnnxModel(OnnxModel):
    async def predict(  # type: ignore[override]
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        inputs = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
        loop = asyncio.get_running_loop()
        values = await loop.run_in_executor(None, self.session.run, self.names, inputs)
        return self.respond(payload, values)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve_args.parser], description=__doc__)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--predict-in-thread", action="store_true")
    args = parser.parse_args()
    model = ThreadedOnnxModel if args.predict_in_thread else OnnxModel
    ModelServer().start([model(args.model_name, args.model_path)])


if __name__ == "__main__":
    main()
