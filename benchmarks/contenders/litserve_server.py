"""LitServe (0.2.19) serving an ONNX model with ONNX Runtime (one intra-op thread), with its own
request batching: V2 JSON requests (what MLServer and KServe take) decoded to NumPy, batched
along the first axis, run, split and answered as V2 JSON.

Run inside the LitServe venv by benchmarks/contenders/peers.py; never imported by the suite.

    python litserve_server.py --model M --name cnn --port P --max-batch-size 32 \
        --batch-timeout-ms 2 --workers 1
"""

# No `from __future__ import annotations` here: LitServe reads decode_request's annotation at
# run time to choose how to read the body, and a string annotation would not be a type.
import argparse
from typing import Any

import litserve as ls
import numpy as np
import onnxruntime as ort
from fastapi import Request

_DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
_DATATYPES = {np.dtype(v): k for k, v in _DTYPES.items()}
Tensors = dict[str, np.ndarray]


class OnnxApi(ls.LitAPI):  # type: ignore[misc]
    def __init__(self, path: str, name: str, **batching: Any) -> None:
        super().__init__(api_path=f"/v2/models/{name}/infer", **batching)
        self.path = path
        self.name = name

    def setup(self, device: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]

    def decode_request(self, request: Request) -> Tensors:
        # LitServe hands over the body already parsed (`await request.json()`) for `Request`.
        body: dict[str, Any] = request  # type: ignore[assignment]
        return {
            t["name"]: np.asarray(t["data"], dtype=_DTYPES[t["datatype"]]).reshape(t["shape"])
            for t in body["inputs"]
        }

    def batch(self, inputs: list[Tensors]) -> tuple[Tensors, list[int]]:
        sizes = [len(next(iter(one.values()))) for one in inputs]
        return {name: np.concatenate([one[name] for one in inputs]) for name in inputs[0]}, sizes

    def predict(self, x: Tensors | tuple[Tensors, list[int]]) -> Any:
        if isinstance(x, tuple):  # a batch: one output list per request
            feeds, sizes = x
            values = self.session.run(self.names, feeds)
            cuts = np.cumsum(sizes)[:-1]
            return list(zip(*(np.split(v, cuts) for v in values), strict=True))
        return self.session.run(self.names, x)

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    # No return annotation: LitServe would make it FastAPI's response model and validate every
    # answer against it.
    def encode_response(self, output: list[np.ndarray]):  # type: ignore[no-untyped-def]
        outputs = [
            {"name": n, "datatype": _DATATYPES[v.dtype], "shape": list(v.shape),
             "data": v.ravel().tolist()}
            for n, v in zip(self.names, output, strict=True)
        ]  # fmt: skip
        return {"model_name": self.name, "outputs": outputs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument("--batch-timeout-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=1, help="inference workers (processes)")
    parser.add_argument("--fast-queue", action="store_true", help="ZeroMQ between processes")
    args = parser.parse_args()
    api = OnnxApi(
        args.model,
        args.name,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout_ms / 1000,
    )
    server = ls.LitServer(
        api, accelerator="cpu", workers_per_device=args.workers, fast_queue=args.fast_queue
    )
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
