"""The console's server side on a real server: its JSON view of the manager's state, API keys,
the console setting, the static files' headers, and the API docs served without a CDN.
(The pages themselves are driven in a real browser in tests/console/.)"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from model_store import open_store
from service.http.routes.console import CONTENT_SECURITY_POLICY
from service.settings import Settings
from tests.console.demo_store import image_model
from tests.e2e import tiny
from tests.security.forge import forge_version
from tests.service.helpers import ServerProcess, publish, running_server

KEY = "console-test-key"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _models(server: ServerProcess, key: str = KEY) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/console/api/models", headers=_bearer(key), timeout=10)
    assert response.status_code == 200, response.text
    return {m["name"]: m for m in response.json()["models"]}


def _wait_for(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """API keys on, store polled every 0.3 s: `add` under a `stable` alias, `cnn` latest."""
    root = tmp_path_factory.mktemp("console")
    store = root / "store"
    tiny.publish_v1_stable(str(store), root / "models")
    publish(store, "cnn", image_model(root / "cnn.onnx", seed=0))
    env = {"INDUCTIVE_API_KEYS": f"other-key,{KEY}", "INDUCTIVE_POLL_INTERVAL_S": "0.3"}
    with running_server(store, root, env) as server:
        yield server, store


def test_console_view_describes_states_policy_signature_and_runtime(
    keyed: tuple[ServerProcess, Path],
) -> None:
    server, _ = keyed
    response = httpx.get(f"{server.url}/console/api/models", headers=_bearer(KEY))
    doc = response.json()
    assert doc["server"] | {"version": None} == {
        "version": None, "ready": True, "provider": "cpu", "precision": "fp32",
        "model_control_mode": "poll", "api_keys": True,
    }  # fmt: skip
    models = {m["name"]: m for m in doc["models"]}
    add = models["add"]
    assert add["policy"]["kind"] == "alias"
    assert add["aliases"] == {"stable": 1}
    assert add["default_version"] == 1
    [v1] = add["versions"]
    assert v1 | {"inputs": None, "outputs": None} == {
        "version": 1, "state": "READY", "reason": "", "served": True,
        "provider": "CPU", "precision": "fp32", "inputs": None, "outputs": None,
        "optional_inputs": [], "labels": {},
        "batching": {"dynamic": True, "max_batch_size": 16, "max_queue_delay_ms": 2.0,
                     "preferred_batch_sizes": [], "max_queue_size": 1024,
                     "default_timeout_ms": None},
    }  # fmt: skip
    assert [t["name"] for t in v1["inputs"]] == ["x", "y"]
    assert v1["outputs"] == [{"name": "sum", "datatype": "FP32", "shape": [-1, 4]}]
    assert [(e["version"], e["state"]) for e in add["history"]] == [(1, "LOADING"), (1, "READY")]
    assert models["cnn"]["policy"]["kind"] == "latest"
    assert response.headers["cache-control"] == "no-store"


def test_a_version_that_fails_to_load_shows_with_its_reason_and_history(
    keyed: tuple[ServerProcess, Path],
) -> None:
    server, store = keyed
    good = (store / "cnn" / "1" / "model.onnx").read_bytes()
    version = forge_version(store, "cnn", {"model.onnx": good[: len(good) // 2]})
    failed = _wait_for(lambda: [v for v in _models(server)["cnn"]["versions"]
                                if v["version"] == version and v["state"] == "FAILED"])  # fmt: skip
    assert failed, _models(server)["cnn"]
    assert "model.onnx" in failed[0]["reason"] or "rotobuf" in failed[0]["reason"], failed
    assert failed[0]["served"] is False
    assert "provider" not in failed[0]
    cnn = _models(server)["cnn"]
    assert cnn["default_version"] == 1  # the working version keeps serving
    assert [(e["version"], e["state"]) for e in cnn["history"][-2:]] == [
        (version, "LOADING"),
        (version, "FAILED"),
    ]
    assert cnn["history"][-1]["reason"] == failed[0]["reason"]


def test_the_console_view_needs_an_api_key_when_keys_are_set(
    keyed: tuple[ServerProcess, Path],
) -> None:
    server, _ = keyed
    url = f"{server.url}/console/api/models"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json() == {
        "error": "the console needs an 'Authorization: Bearer <token>' header"
    }
    wrong = httpx.get(url, headers=_bearer("guess"))
    assert (wrong.status_code, wrong.json()["error"]) == (
        403, "the bearer token is not valid for the console",
    )  # fmt: skip
    assert httpx.get(url, headers=_bearer("other-key")).status_code == 200
    # The page itself loads without a key: it is what asks for one.
    assert httpx.get(f"{server.url}/console/").status_code == 200


def test_console_files_carry_a_strict_csp_and_revalidate(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/console/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert csp.startswith("default-src 'self';")
    assert "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    # No inline script or style in the page: every script and stylesheet is a file.
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)
    assert "<style" not in page.text
    assert " style=" not in page.text
    script = httpx.get(f"{server.url}/console/js/main.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    again = httpx.get(
        f"{server.url}/console/js/main.js", headers={"if-none-match": script.headers["etag"]}
    )
    assert (again.status_code, again.content) == (304, b"")
    redirect = httpx.get(f"{server.url}/console")
    assert (redirect.status_code, redirect.headers["location"]) == (308, "console/")
    missing = httpx.get(f"{server.url}/console/js/../../settings.py")
    assert missing.status_code == 404


def test_every_console_file_is_reachable_from_the_page(server: ServerProcess) -> None:
    """The files under static/ are all served, and each module the page imports exists."""
    static = Path(__file__).resolve().parents[2] / "service" / "console" / "static"
    for path in static.rglob("*"):
        if path.is_file():
            name = path.relative_to(static).as_posix()
            response = httpx.get(f"{server.url}/console/{name}")
            assert response.status_code == 200, name
            assert response.content == path.read_bytes()
            for imported in re.findall(r'from "\./([\w.]+)"', response.text):
                assert (path.parent / imported).is_file(), f"{name} imports missing {imported}"


def test_api_docs_need_no_other_origin(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    assert "content-security-policy" in page.headers
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text), page.text
    for asset in re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text):
        response = httpx.get(f"{server.url}/{asset}")
        assert response.status_code == 200, asset
    bundle = httpx.get(f"{server.url}/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
    assert len(bundle.content) > 100_000
    assert httpx.get(f"{server.url}/redoc").status_code == 404  # it would load from a CDN


def test_the_console_can_be_turned_off(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(store, "cnn", image_model(tmp_path / "cnn.onnx", seed=0))
    with running_server(store, tmp_path, {"INDUCTIVE_CONSOLE": "false"}) as server:
        for path in ("/console", "/console/", "/console/api/models", "/console/js/main.js"):
            response = httpx.get(f"{server.url}{path}")
            assert response.status_code == 404, path
            assert "set INDUCTIVE_CONSOLE=true" in response.json()["error"]
        assert httpx.get(f"{server.url}/docs").status_code == 200
        assert open_store(str(store)).list_models() == ["cnn"]


@pytest.mark.parametrize(
    ("host", "console", "enabled"),
    [
        ("127.0.0.1", None, True),
        ("127.0.0.2", None, True),
        ("::1", None, True),
        ("[::1]", None, True),
        ("localhost", None, True),
        ("0.0.0.0", None, False),
        ("::", None, False),
        ("10.1.2.3", None, False),
        ("serving.example", None, False),
        ("0.0.0.0", True, True),
        ("127.0.0.1", False, False),
    ],
)
def test_console_is_on_by_default_only_on_loopback(
    host: str, console: bool | None, enabled: bool
) -> None:
    assert Settings(host=host, console=console).console_enabled is enabled
