"""`/v2/health/ready` means "can serve what the configuration asks for": the rule on its own,
then on real server processes (empty store, every model failed, a named model missing, the
`any` setting, a model published later in poll mode)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from service.lifecycle.readiness import FIRST_LOAD, assess
from tests.service import models
from tests.service.helpers import ServerProcess, publish, running_server

# --- the rule --------------------------------------------------------------------------------


def _assess(**kw: Any) -> Any:
    args: dict[str, Any] = {
        "rule": "all", "started": True, "draining": False, "to_serve": (), "served": (),
        "outcomes": {},
    } | kw  # fmt: skip
    return assess(args.pop("rule"), **args)


def test_not_ready_while_starting_or_draining() -> None:
    assert _assess(started=False, to_serve={"a"}).reason == "loading the models at start-up"
    draining = _assess(draining=True, to_serve={"a"}, served={"a"}, outcomes={"a": ""})
    assert (draining.ready, draining.reason) == (False, "shutting down")


def test_nothing_served_is_never_ready() -> None:
    for rule in ("all", "any"):
        empty = _assess(rule=rule)
        assert not empty.ready
        assert "no model to serve" in empty.reason
        failed = _assess(rule=rule, to_serve={"a"}, outcomes={"a": "v1 FAILED: boom"})
        assert not failed.ready
        assert failed.not_ready == {"a": "v1 FAILED: boom"}


def test_explicit_mode_with_nothing_asked_for_is_ready() -> None:
    """Explicit mode serves what it is asked to: nothing yet is ready (as Triton); a model that
    was asked for and failed still counts."""
    assert _assess(nothing_asked_is_ready=True).ready
    failed = _assess(nothing_asked_is_ready=True, to_serve={"a"}, outcomes={"a": "v1 FAILED"})
    assert not failed.ready
    assert not _assess(nothing_asked_is_ready=True, started=False).ready
    assert not _assess(nothing_asked_is_ready=True, draining=True).ready


def test_all_needs_every_model_to_serve_any_needs_one() -> None:
    state = {
        "to_serve": {"a", "b"}, "served": {"a"}, "outcomes": {"a": "", "b": "not in the store"},
    }  # fmt: skip
    strict = _assess(**state)
    assert not strict.ready
    assert strict.reason == "1 of 2 models to serve have no READY version"
    assert strict.not_ready == {"b": "not in the store"}
    lenient = _assess(rule="any", **state)
    assert lenient.ready
    assert lenient.body() == {"ready": True, "not_ready": {"b": "not in the store"}}


def test_a_model_whose_first_load_runs_does_not_unready_a_serving_server() -> None:
    """Published after start-up: not yet counted (every replica would flip at once)."""
    loading = _assess(to_serve={"a", "new"}, served={"a"}, outcomes={"a": ""})
    assert loading.ready
    assert loading.not_ready == {"new": FIRST_LOAD}
    # But a first load is no reason to call a server that serves nothing ready.
    only = _assess(to_serve={"new"})
    assert not only.ready
    assert only.reason == "no model is served"


def test_a_served_model_is_ready_whatever_its_newer_versions_did() -> None:
    """The outcome describes the last load; a model with a served version is ready."""
    assert _assess(to_serve={"a"}, served={"a"}, outcomes={"a": ""}).body() == {"ready": True}


# --- on a real server ------------------------------------------------------------------------


def _ready(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{server.url}/v2/health/ready", timeout=5)
    return response.status_code, response.json()


def _eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def _settled(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    """The readiness answer once start-up has finished loading."""
    _eventually(lambda: "start-up" not in _ready(server)[1].get("reason", ""))
    return _ready(server)


def _infer_add(server: ServerProcess) -> int:
    x = [1.0, 2.0, 3.0, 4.0]
    body = {"inputs": [{"name": n, "shape": [1, 4], "datatype": "FP32", "data": x}
                       for n in ("x", "y")]}  # fmt: skip
    return httpx.post(f"{server.url}/v2/models/add/infer", json=body, timeout=30).status_code


def test_empty_store_is_not_ready_until_a_model_is_published(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    env = {"INDUCTIVE_POLL_INTERVAL_S": "0.2"}
    with running_server(store, tmp_path, env, wait_for="/v2/health/live") as server:
        status, body = _settled(server)
        assert status == 503
        assert body == {
            "ready": False, "reason": "no model to serve: none in the store, or all unloaded",
        }  # fmt: skip
        publish(store, "add", models.add_model(tmp_path))  # poll mode: no restart
        _eventually(lambda: _ready(server)[0] == 200)
        assert _ready(server)[1] == {"ready": True}
        assert _infer_add(server) == 200


def test_every_model_failed_is_not_ready_and_says_why(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(store, "broken", models.unknown_op_model(tmp_path))
    env = {"INDUCTIVE_MODEL_CONTROL_MODE": "none"}
    with running_server(store, tmp_path, env, wait_for="/v2/health/live") as server:
        status, body = _settled(server)
    assert status == 503
    assert body["reason"] == "no model is served"
    assert list(body["not_ready"]) == ["broken"]
    assert body["not_ready"]["broken"].startswith("v1 FAILED: ")
    assert "NoSuchOp" in body["not_ready"]["broken"]


def test_a_named_model_missing_keeps_the_server_unready_but_serving(tmp_path: Path) -> None:
    """INDUCTIVE_MODELS=add,later with only `add` in the store: `add` serves (inference is not
    refused), the probe says 503 naming `later`, until `later` is published and loads."""
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path))
    env = {"INDUCTIVE_MODELS": "add,later", "INDUCTIVE_POLL_INTERVAL_S": "0.2"}
    with running_server(store, tmp_path, env, wait_for="/v2/health/live") as server:
        status, body = _settled(server)
        assert status == 503
        assert body == {
            "ready": False,
            "reason": "1 of 2 models to serve have no READY version",
            "not_ready": {"later": "not in the store"},
        }
        assert _infer_add(server) == 200
        publish(store, "later", models.add_model(tmp_path, name="later"))
        _eventually(lambda: _ready(server)[0] == 200)


def test_ready_requires_any_serves_with_one_model_ready(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path))
    publish(store, "broken", models.unknown_op_model(tmp_path))
    env = {"INDUCTIVE_READY_REQUIRES": "any", "INDUCTIVE_MODEL_CONTROL_MODE": "none"}
    with running_server(store, tmp_path, env) as server:
        status, body = _ready(server)
    assert status == 200
    assert body["ready"] is True
    assert "NoSuchOp" in body["not_ready"]["broken"]


def test_one_failed_model_among_good_ones_is_not_ready_by_default(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(store, "add", models.add_model(tmp_path))
    publish(store, "broken", models.unknown_op_model(tmp_path))
    env = {"INDUCTIVE_MODEL_CONTROL_MODE": "none"}
    with running_server(store, tmp_path, env, wait_for="/v2/health/live") as server:
        status, body = _settled(server)
        assert _infer_add(server) == 200
    assert status == 503
    assert body["reason"] == "1 of 2 models to serve have no READY version"
    assert list(body["not_ready"]) == ["broken"]
