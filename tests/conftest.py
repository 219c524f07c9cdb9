"""Suite-wide configuration: GPU tests are skipped where no CUDA device serves."""

from __future__ import annotations

import pytest


def _cuda_usable() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    # onnxruntime-gpu lists CUDA even where the CUDA libraries are missing; a GPU test
    # decides for itself with a real session, this is only the cheap first filter.
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_usable():
        return
    skip_gpu = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
