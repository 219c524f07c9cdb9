"""A canary under load, on a real server polling a local or an S3 store: `python -m model_store
canary` splits the requests that name no version by its weight, a weight change takes effect at
the next poll, `promote` and `rollback` end it, and not one request fails; a request naming a
version is never split. Every answer is checked against the version that says it computed it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from benchmarks.harness.load_pool import LoadPool, Record
from benchmarks.lifecycle_e2e import store_command
from model_store import add_onnx, open_store
from tests.e2e.test_lifecycle import server_env
from tests.e2e.tiny import BODY, MODEL, artifact, check_sum, publish_v1_stable
from tests.model_store.seaweed import SeaweedS3
from tests.service.helpers import REPO_ROOT, ServerProcess, running_server

pytestmark = pytest.mark.slow


def cli(store_uri: str, *args: str) -> str:
    done = subprocess.run(
        store_command(store_uri, *args), cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return time.monotonic()


def served(server: ServerProcess) -> list[str]:
    return list(httpx.get(f"{server.url}/v2/models/{MODEL}", timeout=5).json()["versions"])


def weight_gauge(server: ServerProcess) -> dict[str, float]:
    return {
        k: v for k, v in server.metrics().items() if k.startswith("inductive_canary_weight_ratio")
    }


def next_records(load: LoadPool, since: float, count: int, timeout: float = 240) -> list[Record]:
    """The first `count` requests sent after `since` (waiting until they are answered; a shared
    machine may hold the load pool well below its rate)."""
    eventually(lambda: sum(r.start >= since for r in load.records) >= count, f"{count} requests",
               timeout)  # fmt: skip
    return [r for r in load.records if r.start >= since][:count]


def share_of(version: int, records: list[Record]) -> float:
    return sum(r.version == version for r in records) / len(records)


def test_canary_split_weight_change_promote_and_rollback_under_load_fail_no_request(
    store_uri: str, seaweed_server: SeaweedS3 | None, tmp_path: Path
) -> None:
    publish_v1_stable(store_uri, tmp_path)
    store = open_store(store_uri)
    for version in (2, 3):
        assert add_onnx(store, MODEL, artifact(tmp_path, version)) == version
    env = server_env(store_uri, seaweed_server)
    with (
        running_server(tmp_path / "unused", tmp_path, env) as server,
        LoadPool(server.url, MODEL, [BODY], rps=200, workers=8, check=check_sum) as load,
    ):
        assert served(server) == ["1"]
        cli(store_uri, "canary", MODEL, "2", "--weight", "0.2")
        eventually(lambda: bool(weight_gauge(server)), "the canary routed")
        split = next_records(load, time.monotonic(), 2000)

        # Requests naming a version are never split, whatever the weight.
        with httpx.Client(base_url=server.url, timeout=10) as client:
            named = {
                v: {client.post(f"/v2/models/{MODEL}/versions/{v}/infer", content=BODY,
                                headers={"content-type": "application/json"}
                                ).json()["model_version"] for _ in range(100)}
                for v in (1, 2)
            }  # fmt: skip

        cli(store_uri, "canary", MODEL, "2", "--weight", "0.6")
        changed = eventually(
            lambda: 0.6 in weight_gauge(server).values(), "the new weight at the next poll"
        )
        heavier = next_records(load, changed, 600)

        assert cli(store_uri, "promote", MODEL).startswith(f"{MODEL}: stable → version 2")
        promoted = eventually(lambda: served(server) == ["2"], "v1 unloaded after promote")
        after_promote = next_records(load, promoted, 300)

        cli(store_uri, "canary", MODEL, "3", "--weight", "0.5")
        load.first_served(3, time.monotonic(), timeout=30)
        cli(store_uri, "rollback", MODEL)
        rolled_back = eventually(lambda: served(server) == ["2"], "v3 unloaded after rollback")
        after_rollback = next_records(load, rolled_back, 300)
        records = load.stop()
        log = server.log()

    failures = [r.error for r in records if r.error]
    print(  # the figures of record for the canary (pytest -s shows them)
        f"canary: weight 0.2 → v2 answered {share_of(2, split):.3f} of {len(split)}; "
        f"weight 0.6 → {share_of(2, heavier):.3f} of {len(heavier)}; "
        f"{len(records)} requests in all, {len(failures)} failed"
    )
    assert failures == [], failures[:5]
    assert {r.version for r in split} == {1, 2}
    assert 0.15 <= share_of(2, split) <= 0.25, share_of(2, split)
    assert named == {1: {"1"}, 2: {"2"}}
    assert 0.5 <= share_of(2, heavier) <= 0.7, share_of(2, heavier)
    assert {r.version for r in after_promote} == {2}
    assert {r.version for r in after_rollback} == {2}
    assert "canary: v2 answers 20.0% of the requests naming no version, v1 the rest" in log
    assert "no canary any more" in log
    assert store.aliases(MODEL) == {"stable": 2}
    assert store.config(MODEL).version_policy.kind == "alias"
