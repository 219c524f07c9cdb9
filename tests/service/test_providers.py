"""Provider detection: one log line says what serves, and why."""

from __future__ import annotations

import logging

import pytest

from service.runtime.providers import choose_providers
from service.settings import Settings
from tests.conftest import _cuda_usable


@pytest.mark.skipif(_cuda_usable(), reason="checks the CPU fallback; this machine has a GPU")
def test_auto_falls_back_to_cpu_and_says_so_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service.runtime.providers"):
        choice = choose_providers(Settings(providers="auto"))
    assert choice.providers == ["CPUExecutionProvider"]
    assert not choice.on_gpu
    lines = [r.getMessage() for r in caplog.records if "serves on" in r.getMessage()]
    assert len(lines) == 1
    assert "serves on CPU: CPUExecutionProvider" in lines[0]
    assert "no usable CUDA device" in lines[0]


@pytest.mark.skipif(_cuda_usable(), reason="checks the refusal; this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_fails_at_start_with_the_fix() -> None:
    with pytest.raises(RuntimeError, match="use 'auto' or 'cpu'"):
        choose_providers(Settings(providers="cuda"))
