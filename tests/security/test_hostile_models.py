"""Models are data, not code: only ONNX is loaded, nothing is unpickled, external data cannot
point outside the version directory (at publish or at load), custom-op libraries never load. Each
hostile version fails to load with a clear reason while the working version keeps serving."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest

from model_store import UnsafeModelError, add_onnx, open_store
from tests.model_store.helpers import claim_external_data
from tests.reliability.clients import add_body
from tests.security.conftest import ADMIN_TOKEN, API_KEYS, bearer
from tests.security.forge import forge_version
from tests.service import models
from tests.service.helpers import ServerProcess

SECRET = np.float32(1234.5)  # were it read as the model's offset, every answer would show it


class _Touch:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _escaping_add_model(directory: Path, location: str) -> Path:
    """`add` whose offset constant claims to live in the external file `location`."""
    directory.mkdir(exist_ok=True)
    proto = onnx.load(str(models.add_model(directory)))
    claim_external_data(next(t for t in proto.graph.initializer if t.name == "c"), location)
    path = directory / "escaping.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def _load(server: ServerProcess) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v2/repository/models/add/load", headers=bearer(ADMIN_TOKEN), timeout=60
    )


def _reason(server: ServerProcess, version: int) -> str:
    index = httpx.post(f"{server.url}/v2/repository/index", headers=bearer(ADMIN_TOKEN)).json()
    entry = next(e for e in index if e["name"] == "add" and e.get("version") == str(version))
    assert entry["state"] == "FAILED", entry
    reason: str = entry["reason"]
    return reason


def _still_serving_v1(server: ServerProcess) -> None:
    assert server.process.poll() is None
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    body = add_body(np.ones((1, 4), np.float32), np.ones((1, 4), np.float32))
    response = httpx.post(
        f"{server.url}/v2/models/add/infer", json=body, headers=bearer(API_KEYS[0]), timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "1"
    assert response.json()["outputs"][0]["data"] == [2.0] * 4


def _refused(server: ServerProcess, version: int, *fragments: str) -> str:
    response = _load(server)
    assert response.status_code == 400, response.text
    assert f"version {version}" in response.json()["error"]
    reason = _reason(server, version)
    for fragment in fragments:
        assert fragment in reason, reason
    _still_serving_v1(server)
    return reason


def test_a_pickle_is_never_unpickled(server: ServerProcess, store: Path, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Touch(marker))
    # The payload is live: loading it anywhere would leave the marker.
    pickle.loads(pickle.dumps(_Touch(tmp_path / "proof")))  # noqa: S301 (our own payload)
    assert (tmp_path / "proof").exists()
    version = forge_version(store, "add", {"model.onnx": payload})
    _refused(server, version, "model.onnx")
    assert not marker.exists(), "the store's model file was unpickled"


def test_random_bytes_are_refused(server: ServerProcess, store: Path) -> None:
    version = forge_version(store, "add", {"model.onnx": random.Random(0).randbytes(4096)})
    _refused(server, version)


def test_external_data_outside_the_version_is_refused_at_publish(
    store: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_bytes(SECRET.tobytes())
    escaping = _escaping_add_model(tmp_path / "src", "../secret")
    before = open_store(str(store)).list_versions("add")
    with pytest.raises(UnsafeModelError, match="outside the version directory"):
        add_onnx(open_store(str(store)), "add", escaping)
    assert open_store(str(store)).list_versions("add") == before


@pytest.mark.parametrize("location", ["../../secret", "/SECRET_PATH"])
def test_external_data_outside_the_version_is_refused_at_load(
    server: ServerProcess, store: Path, tmp_path: Path, location: str
) -> None:
    secret = store / "secret"  # ../../secret from <store>/add/<version>/model.onnx
    secret.write_bytes(SECRET.tobytes())
    location = location.replace("/SECRET_PATH", str(secret))
    model = _escaping_add_model(tmp_path / "src", location).read_bytes()
    version = forge_version(store, "add", {"model.onnx": model})
    _refused(server, version, "outside the version directory")


def test_external_data_symlinked_outside_the_version_is_refused_at_load(
    server: ServerProcess, store: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET.tobytes())
    model = _escaping_add_model(tmp_path / "src", "weights.bin").read_bytes()
    version = forge_version(store, "add", {"model.onnx": model, "weights.bin": secret})
    _refused(server, version, "symlink")


def test_an_unknown_custom_op_fails_to_load_clearly(
    server: ServerProcess, store: Path, tmp_path: Path
) -> None:
    """Published through the ordinary importer (it is valid ONNX); no custom-op library is ever
    registered, so the session cannot be created."""
    version = add_onnx(open_store(str(store)), "add", models.unknown_op_model(tmp_path))
    _refused(server, version, "NoSuchOp")
