"""Waiting on a real server from the reliability tests: a condition within a deadline, and the
versions a model serves as its metadata lists them."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.service.helpers import ServerProcess


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def served_versions(server: ServerProcess, model: str) -> list[str]:
    """The versions in the model's metadata; none when it is not served."""
    response = httpx.get(f"{server.url}/v2/models/{model}", timeout=10)
    return list(response.json().get("versions", [])) if response.status_code == 200 else []
