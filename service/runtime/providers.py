"""Which execution provider serves: decided once per process, logged in one line.

onnxruntime-gpu lists CUDA and TensorRT in `get_available_providers()` even on machines without a
GPU or CUDA libraries; a session asked for CUDA then logs an error and silently falls back to CPU.
So the only honest test is to build a session on a trivial model and read `get_providers()`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import onnxruntime as ort
from onnx import TensorProto, helper

from service.settings import Settings

log = logging.getLogger(__name__)

ProviderList = list[str | tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class ProviderChoice:
    name: str  # "cuda", "tensorrt" or "cpu"
    providers: ProviderList
    on_gpu: bool


def _probe_model() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _cuda_serves(device_id: int) -> bool:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the fallback error is expected on CPU machines
    ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(
            _probe_model(),
            sess_options=options,
            providers=[("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"],
        )
        return session.get_providers()[0] == "CUDAExecutionProvider"
    except Exception:  # a broken CUDA install raises instead of falling back
        return False
    finally:
        ort.set_default_logger_severity(2)


def tensorrt_options(settings: Settings) -> dict[str, Any]:
    """The TensorRT provider's options; its engine cache directory is the root under which each
    model file gets its own (service/runtime/engine_cache.py)."""
    trt: dict[str, Any] = {"device_id": settings.cuda_device_id}
    if settings.trt_engine_cache:
        trt |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": settings.trt_engine_cache}
    return trt


def choose_providers(settings: Settings) -> ProviderChoice:
    wanted = settings.providers
    cuda_opts = {"device_id": settings.cuda_device_id}
    if wanted == "cpu":
        choice = ProviderChoice("cpu", ["CPUExecutionProvider"], on_gpu=False)
    elif _cuda_serves(settings.cuda_device_id):
        cuda: ProviderList = [("CUDAExecutionProvider", cuda_opts), "CPUExecutionProvider"]
        if wanted == "tensorrt":
            trt = ("TensorrtExecutionProvider", tensorrt_options(settings))
            choice = ProviderChoice("tensorrt", [trt, *cuda], True)
        else:
            choice = ProviderChoice("cuda", cuda, on_gpu=True)
    elif wanted in ("cuda", "tensorrt"):
        raise RuntimeError(
            f"INDUCTIVE_PROVIDERS={wanted} but no usable CUDA device {settings.cuda_device_id} "
            "(driver or CUDA libraries missing); use 'auto' or 'cpu' to serve on CPU"
        )
    else:
        choice = ProviderChoice("cpu", ["CPUExecutionProvider"], on_gpu=False)
    where = f"GPU {settings.cuda_device_id}" if choice.on_gpu else "CPU"
    why = "" if choice.on_gpu or wanted == "cpu" else ", no usable CUDA device"
    providers = ", ".join(p if isinstance(p, str) else p[0] for p in choice.providers)
    log.info(
        "ONNX Runtime %s serves on %s: %s (INDUCTIVE_PROVIDERS=%s%s)",
        ort.__version__, where, providers, wanted, why,
    )  # fmt: skip
    return choice
