"""Store-less mode (KServe as a host): `python -m service --model_dir DIR --model_name NAME`
serves a plain directory as one model, answering tritonclient over HTTP and gRPC; a directory
that cannot be served stops the process with one line naming what is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from pydantic import ValidationError

from benchmarks.harness.servers import Launch, ServerProcess, free_port, serve
from service.settings import Settings
from tests.deploy.test_kserve_runtime import runtime_args
from tests.model_store.helpers import linear_model, write_escaping_model, write_model
from tests.service.helpers import REPO_ROOT

LABELS = ["cat", "dog", "bird"]
CONFIG = {"labels": {"logits": LABELS}, "batching": {"max_batch_size": 8}}


def kserve_dir(root: Path) -> Path:
    """What KServe's storage initializer leaves in /mnt/models for an ONNX model whose weights
    are external data: model.onnx, its data file, and our optional config."""
    directory = root / "mnt-models"
    directory.mkdir()
    model = linear_model()
    model.ir_version = 8  # what the installed ONNX Runtime reads
    onnx.save_model(
        model, str(directory / "model.onnx"), save_as_external_data=True,
        all_tensors_to_one_file=True, location="weights.bin", size_threshold=0,
    )  # fmt: skip
    assert (directory / "weights.bin").is_file()
    (directory / "config.json").write_text(json.dumps(CONFIG))
    return directory


@pytest.fixture
def dir_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    directory = kserve_dir(tmp_path)
    port, grpc_port = free_port(), free_port()
    # The arguments of our KServe runtime (k8s/kserve/servingruntime.yaml) as KServe passes
    # them, with this test's directory and ports in place of /mnt/models and 8080/8081.
    places = {
        "{{.Name}}": "linear", "/mnt/models": str(directory),
        "=8080": f"={port}", "=8081": f"={grpc_port}",
    }  # fmt: skip
    args = runtime_args("linear")
    for template, value in places.items():
        args = [arg.replace(template, value) for arg in args]
    assert len({a.split("=")[0] for a in args}) == 4, args
    argv = [sys.executable, "-m", "service", *args]
    env = {
        "INDUCTIVE_HOST": "127.0.0.1",
        "INDUCTIVE_PROVIDERS": "cpu",
        "INDUCTIVE_INTRA_OP_THREADS": "1",
        "INDUCTIVE_LOG_FORMAT": "text",
        # Neither is used: the directory is served where it is, no store is read.
        "INDUCTIVE_STORE": str(tmp_path / "no-store"),
        "INDUCTIVE_CACHE_DIR": str(tmp_path / "no-cache"),
    }
    launch = Launch(argv, port, env=env, grpc_address=f"127.0.0.1:{grpc_port}")
    with serve(launch, log_path=tmp_path / "server.log", ready_timeout_s=60) as server:
        try:
            yield server, directory
        finally:
            server.terminate()


def _expected(directory: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(
        str(directory / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return np.asarray(session.run(["logits"], {"x": x})[0])


def test_a_plain_directory_serves_over_http_and_grpc(
    dir_server: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    server, directory = dir_server
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    expected = _expected(directory, x)

    http = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    assert http.is_server_ready()
    assert http.is_model_ready("linear", "1")
    meta = http.get_model_metadata("linear")
    assert meta["versions"] == ["1"]
    assert [(t["name"], t["shape"]) for t in meta["inputs"]] == [("x", [-1, 4])]
    config = http.get_model_config("linear")
    assert config["max_batch_size"] == 8
    assert config["labels"] == {"logits": LABELS}
    tensor = httpclient.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    answer = http.infer("linear", [tensor])
    np.testing.assert_allclose(answer.as_numpy("logits"), expected, rtol=1e-5, atol=1e-6)
    top = http.infer(
        "linear", [tensor], outputs=[httpclient.InferRequestedOutput("logits", class_count=1)]
    ).as_numpy("logits")
    assert [row[0].decode().split(":")[2] for row in top] == [
        LABELS[i] for i in expected.argmax(axis=1)
    ]

    grpc = grpcclient.InferenceServerClient(server.grpc_address)
    assert grpc.is_model_ready("linear")
    grpc_tensor = grpcclient.InferInput("x", list(x.shape), "FP32")
    grpc_tensor.set_data_from_numpy(x)
    result = grpc.infer("linear", [grpc_tensor], client_timeout=10)
    np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=1e-5, atol=1e-6)
    assert result.get_response().model_version == "1"

    assert not (tmp_path / "no-cache").exists(), "the directory is served in place, not copied"
    assert not (tmp_path / "no-store").exists()
    assert "model linear v1 ready" in server.log()


# --- directories that cannot be served --------------------------------------------------------


def _no_model(d: Path) -> None:
    write_model(d, name="exported.onnx")


def _broken_onnx(d: Path) -> None:
    (d / "model.onnx").write_bytes(os.urandom(512))


def _config_not_json(d: Path) -> None:
    write_model(d)
    (d / "config.json").write_text("{labels: [")


def _config_unknown_field(d: Path) -> None:
    write_model(d)
    (d / "config.json").write_text(json.dumps({"batching": {"max_batch": 8}}))


def _labels_for_a_missing_output(d: Path) -> None:
    write_model(d)
    (d / "config.json").write_text(json.dumps({"labels": {"probs": ["a"]}}))


def _external_data_missing(d: Path) -> None:
    write_model(d, external=True)
    (d / "model.onnx.data").unlink()


def _external_data_escaping(d: Path) -> None:
    write_escaping_model(d, "../weights.bin")


BAD_DIRS = {
    "no model.onnx": (_no_model, "has no model.onnx (it holds exported.onnx"),
    "broken onnx": (_broken_onnx, "model.onnx: not a readable ONNX model"),
    "config not json": (_config_not_json, "invalid config.json (document: Invalid JSON"),
    "config unknown field": (_config_unknown_field, "batching.max_batch: Extra inputs"),
    "labels of no output": (_labels_for_a_missing_output, "labels for 'probs', which model.onnx"),
    "external data missing": (_external_data_missing, "'model.onnx.data' is missing"),
    "external data escaping": (_external_data_escaping, "points outside the version directory"),
}


def _start(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INDUCTIVE_PORT": str(free_port()), "INDUCTIVE_GRPC_PORT": "off"}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", BAD_DIRS, ids=list(BAD_DIRS))
def test_a_bad_directory_stops_the_server_with_one_clear_line(tmp_path: Path, case: str) -> None:
    make, expected = BAD_DIRS[case]
    directory = tmp_path / "models"
    directory.mkdir()
    make(directory)
    done = _start(tmp_path, "--model-dir", str(directory), "--model-name", "m")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"cannot serve model directory {directory}"), lines[0]
    assert expected in lines[0], lines[0]


def test_a_missing_directory_or_name_is_refused_before_anything_starts(tmp_path: Path) -> None:
    missing = _start(tmp_path, "--model_dir", str(tmp_path / "nope"), "--model_name", "m")
    assert missing.returncode != 0
    assert missing.stderr.strip() == (
        f"cannot serve model directory {tmp_path / 'nope'} does not exist or is not a directory"
    )
    write_model(tmp_path / "ok")
    unnamed = _start(tmp_path, "--model-dir", str(tmp_path / "ok"))
    assert unnamed.returncode != 0
    assert "model_dir and model_name go together" in unnamed.stderr
    assert "Traceback" not in unnamed.stderr
    bad_name = _start(tmp_path, "--model-dir", str(tmp_path / "ok"), "--model-name", "../x")
    assert "invalid model name '../x'" in bad_name.stderr
    assert "Traceback" not in bad_name.stderr


def test_model_dir_settings_go_together() -> None:
    assert Settings(model_dir="/mnt/models", model_name="m").model_name == "m"
    for bad in ({"model_dir": "/mnt/models"}, {"model_name": "m"}):
        with pytest.raises(ValidationError, match="model_dir and model_name go together"):
            Settings.model_validate(bad)
    with pytest.raises(ValidationError, match="the directory serves one model, 'm'"):
        Settings(model_dir="/mnt/models", model_name="m", models="m,other")
