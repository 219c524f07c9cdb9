"""The served GPU path end to end: `python -m service` on CUDA answers the binary protocol with
CPU-matching outputs, and unloading a version through the repository API gives its GPU memory
back (read with nvidia-smi)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.bodies import binary_body, decode_response
from benchmarks.workload import collate, load_workload
from tests.service.helpers import ServerProcess, running_server

pytestmark = pytest.mark.gpu
TOKEN = "gpu-test-admin"
BIG_BATCH = 1024  # enough activations to grow ONNX Runtime's CUDA arena by hundreds of MiB


def _gpu_used_mib() -> float:
    """Memory in use on GPU 0, from nvidia-smi. Device-wide rather than per process: per-process
    accounting is missing in some containers, and while this test runs the server is the only
    process whose GPU memory changes (the test process itself only runs CPU sessions)."""
    done = subprocess.run(
        ["nvidia-smi", "--id=0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


def _infer(server: ServerProcess, model: str, inputs: dict[str, np.ndarray]) -> dict:
    body, header_length = binary_body(inputs)
    response = httpx.post(
        f"{server.url}/v2/models/{model}/infer",
        content=body,
        headers={
            "Inference-Header-Content-Length": str(header_length),
            "Content-Type": "application/octet-stream",
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text[:500]
    length = response.headers.get("inference-header-content-length")
    return decode_response(response.content, None if length is None else int(length))


def _admin(server: ServerProcess, action: str, model: str) -> None:
    response = httpx.post(
        f"{server.url}/v2/repository/models/{model}/{action}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
    )
    assert response.status_code == 200, response.text[:500]


@pytest.fixture
def cuda_server(demo_store: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("nvidia-smi") is None:
        pytest.skip("nvidia-smi is not installed")
    env = {
        "INDUCTIVE_PROVIDERS": "cuda",
        "INDUCTIVE_INTRA_OP_THREADS": "2",
        "INDUCTIVE_MODEL_CONTROL_MODE": "explicit",
        "INDUCTIVE_ADMIN_TOKEN": TOKEN,
        "INDUCTIVE_MAX_BATCH_SIZE": str(BIG_BATCH),
    }
    with running_server(demo_store, tmp_path, env) as server:
        yield server


def test_served_gpu_outputs_match_cpu_and_memory_is_released_on_unload(
    cuda_server: ServerProcess, demo_store: Path, tmp_path: Path
) -> None:
    model = "resnet"
    _admin(cuda_server, "load", model)
    workload = load_workload(demo_store, model, tmp_path / "cache")
    small = collate(workload, 8)
    served = _infer(cuda_server, model, small)
    cpu = ort.InferenceSession(str(workload.model_path), providers=["CPUExecutionProvider"])
    expected = cpu.run(["logits"], small)[0]
    error = np.linalg.norm(served["logits"] - expected) / np.linalg.norm(expected)
    assert error <= 5e-3  # TF32 convolutions on the GPU (see test_runtime.py)

    loaded_small = _gpu_used_mib()
    big = collate(workload, BIG_BATCH)
    for _ in range(3):
        _infer(cuda_server, model, big)
    loaded_big = _gpu_used_mib()
    assert loaded_big >= loaded_small + 100, (
        f"a batch of {BIG_BATCH} grew GPU memory only from {loaded_small} to {loaded_big} MiB: "
        "the test cannot tell a release from noise"
    )

    _admin(cuda_server, "unload", model)
    deadline = time.monotonic() + 30  # the old version drains its queue before closing
    while (after := _gpu_used_mib()) > loaded_small + 16 and time.monotonic() < deadline:
        time.sleep(0.5)
    # The CUDA context stays with the process; everything the version allocated goes.
    assert after <= loaded_small + 16, (
        f"GPU memory: {loaded_small} MiB loaded, {loaded_big} after batch {BIG_BATCH}, "
        f"{after} after unload"
    )
    status = httpx.get(f"{cuda_server.url}/v2/models/{model}/ready", timeout=10).status_code
    assert status != 200
