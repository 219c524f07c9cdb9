"""The user's flow of `benchmarks/lifecycle_e2e.py` on tiny models, over a local and an S3 store:
while a pool of clients keeps a steady load on the real server (`python -m service`, poll mode),
`python -m model_store` publishes, promotes, rolls back and runs a canary; not one request may
fail, and every answer is checked against the version that says it computed it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from benchmarks.harness.load_pool import LoadPool
from benchmarks.lifecycle_e2e import Step, run_steps, store_command, summarise
from model_store import open_store
from tests.e2e.tiny import BODY, CONFIG, MODEL, artifact, check_sum, publish_v1_stable
from tests.model_store.seaweed import SeaweedS3
from tests.service.helpers import running_server

POLL_S = 0.2


def server_env(store_uri: str, seaweed: SeaweedS3 | None) -> dict[str, str]:
    return {
        **(seaweed.env() if seaweed else {}),
        "INDUCTIVE_STORE": store_uri,
        "INDUCTIVE_MODEL_CONTROL_MODE": "poll",
        "INDUCTIVE_POLL_INTERVAL_S": str(POLL_S),
    }


@pytest.mark.slow
def test_publish_promote_rollback_under_load_fail_no_request(
    store_uri: str, seaweed_server: SeaweedS3 | None, tmp_path: Path
) -> None:
    publish_v1_stable(store_uri, tmp_path)
    latest = tmp_path / "latest-config.json"
    latest.write_text(CONFIG.model_dump_json())

    def add(version: int, *options: str) -> list[str]:
        return store_command(store_uri, "add", MODEL, str(artifact(tmp_path, version)), *options)

    canary = store_command(store_uri, "canary", MODEL, "2", "--weight", "0.2")
    steps = [
        Step("publish v2 while stable=v1", add(2), 2, held=True),
        Step("promote stable→v2", store_command(store_uri, "promote", MODEL, "2"), 2, alias=True),
        Step("rollback stable→v1", store_command(store_uri, "rollback", MODEL), 1, alias=True),
        Step("canary v2 at 20 %", canary, 2),
        Step("promote the canary", store_command(store_uri, "promote", MODEL), 2, alias=True),
        Step("publish v3 with a latest policy", add(3, "--config", str(latest)), 3),
        Step("publish v4", add(4), 4),
    ]
    env = server_env(store_uri, seaweed_server)
    with (
        running_server(tmp_path / "unused", tmp_path, env) as server,
        LoadPool(server.url, MODEL, [BODY], rps=100, workers=8, check=check_sum) as load,
    ):
        phases = run_steps(
            load,
            steps,
            store=open_store(store_uri),
            model=MODEL,
            env=dict(os.environ),
            log=tmp_path / "commands.log",
            dwell_s=0.5,
            hold_s=5 * POLL_S,
        )
        end = time.monotonic()
        records = load.stop()
    result = summarise(phases, records, end)
    total = result["total"]
    assert total["failures"] == 0, total["first_failures"]
    assert total["requests"] > 300  # ~100 req/s over the whole flow
    by_label = {p["label"]: p["stats"]["versions"] for p in result["phases"]}
    assert set(by_label["publish v2 while stable=v1"]) == {"1"}
    assert "2" in by_label["promote stable→v2"]
    # After the rollback, v1 answers again, and nothing newer than v2 ever did before v3.
    assert "1" in by_label["rollback stable→v1"]
    assert set(by_label["rollback stable→v1"]) <= {"1", "2"}
    assert {"1", "2"} <= set(by_label["canary v2 at 20 %"]) <= {"1", "2"}
    assert set(by_label["promote the canary"]) <= {"1", "2"}
    assert set(by_label["publish v4"]) <= {"3", "4"}
    last = max(records, key=lambda r: r.start)
    assert last.version == 4
