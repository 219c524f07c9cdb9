"""Inference end to end against the real server with `tritonclient.http` and raw HTTP."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.service.conftest import ADD_LABELS
from tests.service.helpers import ServerProcess
from tests.service.models import add_reference


@pytest.fixture
def client(server: ServerProcess) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def _input(name: str, array: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_add_matches_numpy(
    client: triton.InferenceServerClient, binary_in: bool, binary_out: bool
) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 4), dtype=np.float32), rng.standard_normal((5, 4), np.float32)
    result = client.infer(
        "add",
        [_input("x", x, "FP32", binary_in), _input("y", y, "FP32", binary_in)],
        outputs=[triton.InferRequestedOutput("sum", binary_data=binary_out)],
        request_id="req-7",
    )
    np.testing.assert_array_equal(result.as_numpy("sum"), add_reference(x, y))
    response = result.get_response()
    assert response["model_name"] == "add"
    assert response["model_version"] == "1"
    assert response["id"] == "req-7"


def test_every_datatype_round_trips(client: triton.InferenceServerClient) -> None:
    rng = np.random.default_rng(2)
    arrays = {
        "BOOL": rng.integers(0, 2, (2, 3)).astype(bool),
        "UINT8": rng.integers(0, 255, (2, 3), dtype=np.uint8),
        "UINT16": rng.integers(0, 65535, (2, 3), dtype=np.uint16),
        "UINT32": rng.integers(0, 2**32 - 1, (2, 3), dtype=np.uint32),
        "UINT64": np.array([[0, 1, 2**64 - 1], [3, 4, 5]], dtype=np.uint64),
        "INT8": rng.integers(-128, 127, (2, 3), dtype=np.int8),
        "INT16": rng.integers(-(2**15), 2**15 - 1, (2, 3), dtype=np.int16),
        "INT32": rng.integers(-(2**31), 2**31 - 1, (2, 3), dtype=np.int32),
        "INT64": np.array([[-(2**63), 0, 2**63 - 1], [1, 2, 3]], dtype=np.int64),
        "FP16": rng.standard_normal((2, 3)).astype(np.float16),
        "FP32": rng.standard_normal((2, 3)).astype(np.float32),
        "FP64": rng.standard_normal((2, 3)),
        "BYTES": np.array([[b"a", b"", "é".encode()], [b"xyz", b"0", b"long " * 20]], dtype=object),
    }
    for binary in (True, False):
        inputs = [_input(f"in_{t}", a, t, binary) for t, a in arrays.items()]
        outputs = [triton.InferRequestedOutput(f"out_{t}", binary_data=binary) for t in arrays]
        result = client.infer("all_types", inputs, outputs=outputs)
        for datatype, array in arrays.items():
            got = result.as_numpy(f"out_{datatype}")
            if datatype == "BYTES":
                got = np.vectorize(lambda s: s if isinstance(s, bytes) else s.encode())(got)
                assert got.tolist() == array.tolist(), datatype
            else:
                assert got.dtype == array.dtype, datatype
                np.testing.assert_array_equal(got, array, err_msg=f"{datatype} binary={binary}")


@pytest.mark.parametrize("binary", [True, False])
def test_classification_uses_labels(client: triton.InferenceServerClient, binary: bool) -> None:
    x = np.array([[0.1, 0.9, 0.5, 0.2], [3.0, 1.0, 2.0, 4.0]], dtype=np.float32)
    y = np.zeros_like(x)
    result = client.infer(
        "add",
        [_input("x", x, "FP32", True), _input("y", y, "FP32", True)],
        outputs=[triton.InferRequestedOutput("sum", binary_data=binary, class_count=2)],
    )
    got = [
        [s.decode() if isinstance(s, bytes) else s for s in row] for row in result.as_numpy("sum")
    ]
    assert got == [
        [f"0.900000:1:{ADD_LABELS[1]}", f"0.500000:2:{ADD_LABELS[2]}"],
        [f"4.000000:3:{ADD_LABELS[3]}", f"3.000000:0:{ADD_LABELS[0]}"],
    ]


def test_all_outputs_binary_when_none_requested(client: triton.InferenceServerClient) -> None:
    x = np.ones((1, 4), np.float32)
    result = client.infer("add", [_input("x", x, "FP32", True), _input("y", x, "FP32", True)])
    assert result.get_output("sum")["parameters"]["binary_data_size"] == 16
    np.testing.assert_array_equal(result.as_numpy("sum"), 2 * x)


def test_raw_json_nested_data_and_parameters(server: ServerProcess) -> None:
    body = {
        "id": "nested",
        "parameters": {"tenant": "t1"},
        "inputs": [
            {
                "name": "x",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [[1, 2, 3, 4], [5, 6, 7, 8]],
            },
            {"name": "y", "shape": [2, 4], "datatype": "FP32", "data": [1, 1, 1, 1, 1, 1, 1, 1]},
        ],
    }
    response = httpx.post(f"{server.url}/v2/models/add/versions/1/infer", json=body)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["id"] == "nested"
    assert doc["parameters"] == {"tenant": "t1"}
    assert doc["model_version"] == "1"
    (out,) = doc["outputs"]
    assert out["shape"] == [2, 4]
    assert out["data"] == [2, 3, 4, 5, 6, 7, 8, 9]


def test_metadata_health_and_server(
    server: ServerProcess, client: triton.InferenceServerClient
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("add")
    assert client.is_model_ready("add", "1")
    meta = client.get_model_metadata("ragged")
    assert meta["versions"] == ["1"]
    assert {i["name"]: i["shape"] for i in meta["inputs"]} == {"x": [-1, -1, 2], "lengths": [-1]}
    server_meta = client.get_server_metadata()
    assert set(server_meta["extensions"]) == {
        "binary_tensor_data",
        "classification",
        "model_repository",
        "schedule_policy",  # timeout and priority: tests/service/test_priority.py
        "statistics",
    }
    config = httpx.get(f"{server.url}/v2/models/add/config").json()
    assert config["max_batch_size"] == 32


def test_openapi_documents_inference(server: ServerProcess) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert "post" in schema["paths"]["/v2/models/{model_name}/infer"]
    assert "/v2/models/{model_name}/versions/{model_version}/infer" in schema["paths"]
    assert "/v2/health/ready" in schema["paths"]
