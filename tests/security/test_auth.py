"""Who may do what: the repository API only with the admin token, inference only with an API key
(when keys are configured), probes and metrics open; and no token ever reaches the logs."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.reliability.clients import add_body
from tests.reliability.contract import error_message
from tests.security.conftest import ADMIN_TOKEN, API_KEYS, WRONG_TOKEN, bearer
from tests.service.helpers import ServerProcess, running_server

BODY = add_body(np.ones((1, 4), np.float32), np.ones((1, 4), np.float32))
ADMIN_ROUTES = ["/v2/repository/index", "/v2/repository/models/add/load",
                "/v2/repository/models/add/unload"]  # fmt: skip
NOT_BEARER = [
    {"Authorization": ADMIN_TOKEN},  # no scheme
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
    {"Authorization": "Bearer"},
]


@pytest.mark.parametrize("path", ADMIN_ROUTES)
def test_admin_routes_need_the_admin_token(server: ServerProcess, path: str) -> None:
    url = f"{server.url}{path}"
    missing = httpx.post(url)
    assert "Authorization: Bearer" in error_message(missing, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    for headers in NOT_BEARER:
        error_message(httpx.post(url, headers=headers), 401)
    # Neither a wrong token nor an inference key opens the repository API.
    for token in (WRONG_TOKEN, API_KEYS[0], ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1]):
        message = error_message(httpx.post(url, headers=bearer(token)), 403)
        assert token not in message
    assert httpx.post(url, headers=bearer(ADMIN_TOKEN), timeout=60).status_code == 200


def test_inference_needs_an_api_key_when_keys_are_set(server: ServerProcess) -> None:
    url = f"{server.url}/v2/models/add/infer"
    httpx.post(f"{server.url}/v2/repository/models/add/load", headers=bearer(ADMIN_TOKEN))
    assert "Authorization: Bearer" in error_message(httpx.post(url, json=BODY), 401)
    for token in (WRONG_TOKEN, ADMIN_TOKEN):
        message = error_message(httpx.post(url, json=BODY, headers=bearer(token)), 403)
        assert token not in message
    for key in API_KEYS:
        response = httpx.post(url, json=BODY, headers=bearer(key))
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [2.0] * 4
    # The key is checked before the body is read: a wrong key never gets to spend server work.
    big = httpx.post(url, content=b"x" * 200_000, headers=bearer(WRONG_TOKEN))
    error_message(big, 403)


def test_probes_and_metrics_stay_open(server: ServerProcess) -> None:
    """Kubernetes probes and Prometheus scrape without credentials."""
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path


def test_tokens_never_reach_the_logs(store: Path, tmp_path: Path) -> None:
    """A whole session at debug level — refused and accepted tokens, a failed load, bad requests,
    shutdown — then the complete log is searched for every token."""
    env = {
        "INDUCTIVE_ADMIN_TOKEN": ADMIN_TOKEN,
        "INDUCTIVE_API_KEYS": ",".join(API_KEYS),
        "INDUCTIVE_MODEL_CONTROL_MODE": "explicit",
        "INDUCTIVE_MODELS": "add",  # explicit mode loads only what is listed
        "INDUCTIVE_LOG_LEVEL": "debug",
    }
    for log_format in ("json", "text"):
        run_dir = tmp_path / log_format
        run_dir.mkdir()
        with running_server(store, run_dir, {**env, "INDUCTIVE_LOG_FORMAT": log_format}) as server:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                for token in (WRONG_TOKEN, ADMIN_TOKEN):
                    client.post("/v2/repository/index", headers=bearer(token))
                    client.post("/v2/repository/models/add/load", headers=bearer(token))
                    client.post("/v2/repository/models/nope/load", headers=bearer(token))
                for token in (WRONG_TOKEN, *API_KEYS):
                    client.post("/v2/models/add/infer", json=BODY, headers=bearer(token))
                    client.post("/v2/models/add/infer", content=b"{bad", headers=bearer(token))
                    client.get("/v2/models/add", headers=bearer(token))
            server.terminate()
            log = server.log()
        assert "model add v1 ready" in log, log  # the session did happen, at debug level
        for token in (ADMIN_TOKEN, WRONG_TOKEN, *API_KEYS):
            assert token not in log, f"{token} found in the {log_format} log"
            # Nor a recognisable part of it (a prefix cut by a length limit).
            assert token[:12] not in log, f"{token[:12]} found in the {log_format} log"
