"""On a machine with a CUDA GPU: the CUDA provider serves (with I/O binding) and answers exactly
like the CPU; GPU metrics appear when nvidia-ml-py is installed. Skipped elsewhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton

from tests.service import models
from tests.service.helpers import publish, running_server


@pytest.mark.gpu
def test_cuda_provider_serves_with_io_binding(tmp_path: Path) -> None:
    publish(tmp_path / "store", "add", models.add_model(tmp_path, offset=0.5))
    env = {"INDUCTIVE_PROVIDERS": "cuda", "INDUCTIVE_IO_BINDING": "true"}
    with running_server(tmp_path / "store", tmp_path, env) as server:
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        x = np.random.default_rng(0).standard_normal((8, 4), dtype=np.float32)
        inputs = []
        for name in ("x", "y"):
            tensor = triton.InferInput(name, [8, 4], "FP32")
            tensor.set_data_from_numpy(x, binary_data=True)
            inputs.append(tensor)
        got = client.infer("add", inputs).as_numpy("sum")
        np.testing.assert_allclose(got, models.add_reference(x, x, 0.5), rtol=1e-6)
        assert "serves on GPU" in server.log()
        assert "on CUDAExecutionProvider" in server.log()
        if importlib.util.find_spec("pynvml") is not None:  # the gpu extra, in the serve image
            samples = server.metrics()
            assert samples['inductive_gpu_memory_used_bytes{gpu="0"}'] > 0
            assert 0 <= samples['inductive_gpu_utilization_ratio{gpu="0"}'] <= 1
