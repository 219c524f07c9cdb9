"""Reusable helpers for tests that need a real server: publish tiny models, start
`python -m service` on 127.0.0.1, wait for readiness, read its metrics, stop it.

They live in the harness the tests share with the benchmarks (`benchmarks/harness/servers.py`);
this module keeps the names the test suites import.
"""

from benchmarks.harness.servers import (
    REPO_ROOT,
    ServerProcess,
    free_port,
    publish,
    running_server,
    wait_ready,
)

__all__ = ["REPO_ROOT", "ServerProcess", "free_port", "publish", "running_server", "wait_ready"]
