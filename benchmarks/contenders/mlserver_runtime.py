"""MLServer custom runtime serving an ONNX model with ONNX Runtime (one intra-op thread).

Copied into the MLServer model folder as `onnx_runtime.py` by benchmarks/contenders/peers.py
and run inside MLServer's venv (benchmarks/.work/venvs/mlserver); never imported by the suite.
"""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        uri = await get_model_uri(self._settings)
        self._session = ort.InferenceSession(uri, options, providers=["CPUExecutionProvider"])
        self._names = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        values = self._session.run(self._names, inputs)
        outputs = [NumpyCodec.encode_output(n, v) for n, v in zip(self._names, values, strict=True)]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)
