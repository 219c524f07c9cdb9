"""Every error path answers `{"error": "..."}` with the right status and a message that says
what was wrong; bad input never gets a 5xx."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from model_store.schema import ModelConfig, RaggedInput
from tests.service import models
from tests.service.helpers import ServerProcess, publish, running_server

X = {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": list(range(8))}
Y = {"name": "y", "shape": [2, 4], "datatype": "FP32", "data": list(range(8))}


def _with(tensor: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**tensor, **changes}


CASES = [
    ("unknown model", "/v2/models/nope/infer", {"inputs": [X, Y]}, 404, "unknown model 'nope'"),
    ("unknown version", "/v2/models/add/versions/9/infer", {"inputs": [X, Y]}, 404,
     "version 9 is not served"),
    ("bad version", "/v2/models/add/versions/x1/infer", {"inputs": [X, Y]}, 400,
     "positive integer"),
    ("superscript version", "/v2/models/add/versions/%C2%B9/infer", {"inputs": [X, Y]}, 400,
     "positive integer"),
    ("path escape", "/v2/models/..%2Fx/infer", {"inputs": [X, Y]}, 404, "no route POST"),
    ("absurd name", f"/v2/models/{'a' * 5000}/infer", {"inputs": [X, Y]}, 404, "unknown model"),
    ("wrong datatype", "/v2/models/add/infer",
     {"inputs": [_with(X, datatype="INT32"), Y]}, 400, "expected datatype FP32, got INT32"),
    ("wrong shape", "/v2/models/add/infer",
     {"inputs": [_with(X, shape=[8]), Y]}, 400, "input 'x': expected shape [-1, 4]"),
    ("count mismatch", "/v2/models/add/infer",
     {"inputs": [_with(X, data=list(range(7))), Y]}, 400, "needs 8 elements, data has 7"),
    ("missing input", "/v2/models/add/infer", {"inputs": [X]}, 400, "missing input(s) y"),
    ("extra input", "/v2/models/add/infer",
     {"inputs": [X, Y, _with(X, name="z")]}, 400, "unknown input 'z'"),
    ("unknown output", "/v2/models/add/infer",
     {"inputs": [X, Y], "outputs": [{"name": "nope"}]}, 400, "unknown output 'nope'"),
    ("batch mismatch", "/v2/models/add/infer",
     {"inputs": [X, _with(Y, shape=[1, 4], data=[0] * 4)]}, 400, "batch size 1 differs"),
    ("batch above max", "/v2/models/add/infer",
     {"inputs": [_with(X, shape=[33, 4], data=[0] * 132), _with(Y, shape=[33, 4], data=[0] * 132)]},
     400, "above this model's max batch size 32"),
    ("empty batch", "/v2/models/add/infer",
     {"inputs": [_with(X, shape=[0, 4], data=[]), _with(Y, shape=[0, 4], data=[])]}, 400,
     "empty batch"),
    ("not numbers", "/v2/models/add/infer",
     {"inputs": [_with(X, data=["a"] * 8), Y]}, 400, "input 'x': data is not a FP32 tensor"),
    ("ragged nested", "/v2/models/add/infer",
     {"inputs": [_with(X, data=[[1, 2, 3, 4], [5]]), Y]}, 400, "input 'x'"),
    ("no inputs", "/v2/models/add/infer", {"inputs": []}, 400, "non-empty list"),
    ("bad timeout", "/v2/models/add/infer",
     {"inputs": [X, Y], "parameters": {"timeout": "soon"}}, 400, "timeout"),
    ("lengths too long", "/v2/models/ragged/infer",
     {"inputs": [{"name": "x", "shape": [1, 2, 2], "datatype": "FP32", "data": [0] * 4},
                 {"name": "lengths", "shape": [1], "datatype": "INT64", "data": [3]}]}, 400,
     "lengths must be between 1 and 2"),
    ("empty sequence", "/v2/models/ragged/infer",
     {"inputs": [{"name": "x", "shape": [1, 0, 2], "datatype": "FP32", "data": []}]}, 400,
     "variable axis 1 has length 0"),
    ("sequence above max_length", "/v2/models/ragged/infer",
     {"inputs": [{"name": "x", "shape": [1, 65, 2], "datatype": "FP32", "data": [0] * 130}]}, 400,
     "input 'x': its variable axis 1 has length 65, above the longest this model takes (64)"),
    ("huge shape", "/v2/models/add/infer",
     {"inputs": [_with(X, shape=[2**40, 4]), Y]}, 400, "above the limit"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "status", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_json_errors(
    server: ServerProcess, path: str, body: dict[str, Any], status: int, message: str
) -> None:
    response = httpx.post(f"{server.url}{path}", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_nan_refused_when_config_says_so(server: ServerProcess) -> None:
    # JSON cannot carry NaN, so it travels as binary.
    x = np.zeros((1, 4), np.float32)
    x[0, 2] = np.nan
    body, length = _binary_body([("x", x), ("y", np.zeros((1, 4), np.float32))])
    response = _post_binary(server, body, length)
    assert response.status_code == 400
    assert "input 'x' contains NaN or Inf" in response.json()["error"]


def _binary_body(tensors: list[tuple[str, np.ndarray]]) -> tuple[bytes, int]:
    import orjson

    header = orjson.dumps({"inputs": [
        {"name": n, "shape": list(a.shape), "datatype": "FP32",
         "parameters": {"binary_data_size": a.nbytes}} for n, a in tensors
    ]})  # fmt: skip
    return header + b"".join(a.tobytes() for _, a in tensors), len(header)


def _post_binary(server: ServerProcess, body: bytes, header_length: int) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v2/models/add/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


def test_binary_size_errors(server: ServerProcess) -> None:
    x = np.ones((1, 4), np.float32)
    body, length = _binary_body([("x", x), ("y", x)])
    ok = _post_binary(server, body, length)
    assert ok.status_code == 200, ok.text
    assert "byte" in _post_binary(server, body[:-4], length).json()["error"]
    assert _post_binary(server, body[:-4], length).status_code == 400
    extra = _post_binary(server, body + b"\0\0\0\0", length)
    assert extra.status_code == 400
    assert "binary bytes" in extra.json()["error"]
    too_long = _post_binary(server, body, len(body) + 10)
    assert too_long.status_code == 400
    assert "Inference-Header-Content-Length" in too_long.json()["error"]
    bad_json = _post_binary(server, body, length - 1)
    assert bad_json.status_code == 400


def test_binary_size_must_match_shape(server: ServerProcess) -> None:
    import orjson

    header = orjson.dumps({"inputs": [
        {"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}},
        {"name": "y", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}},
    ]})  # fmt: skip
    response = _post_binary(server, header + bytes(48), len(header))
    assert response.status_code == 400
    assert (
        "input 'x': shape [2, 4] of FP32 needs 32 bytes, binary_data_size is 16"
        in (response.json()["error"])
    )


def test_truncated_bytes_element(server: ServerProcess) -> None:
    import orjson

    header = orjson.dumps({"inputs": [{"name": "in_BYTES", "shape": [1, 3], "datatype": "BYTES",
                                       "parameters": {"binary_data_size": 9}}]})  # fmt: skip
    payload = struct.pack("<I", 1) + b"a" + struct.pack("<I", 9)
    response = httpx.post(
        f"{server.url}/v2/models/all_types/infer",
        content=header + payload,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400
    assert "BYTES element 1 claims 9 bytes" in response.json()["error"]


def test_invalid_json_and_utf8(server: ServerProcess) -> None:
    for content in (b"{not json", b"\xff\xfe", b"[" * 5000, b"[]"):
        response = httpx.post(f"{server.url}/v2/models/add/infer", content=content)
        assert response.status_code == 400, content[:10]
        assert response.json()["error"]


def test_body_too_large_names_the_limit(server: ServerProcess) -> None:
    response = httpx.post(f"{server.url}/v2/models/add/infer", content=b"0" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert "limit of 1048576 bytes" in response.json()["error"]


def test_timeout_parameter_expires_in_queue(server: ServerProcess) -> None:
    # 1 µs cannot survive the 10 ms batching window: the request never reaches the model.
    body = {"inputs": [X, Y], "parameters": {"timeout": 1}}
    response = httpx.post(f"{server.url}/v2/models/add/infer", json=body)
    assert response.status_code == 503
    assert "timed out" in response.json()["error"]
    assert response.headers["retry-after"] == "1"


def test_model_failure_fails_only_its_request(server: ServerProcess) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def call(idx: int) -> httpx.Response:
        body = {"inputs": [
            {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [10, 11, 12, 13]},
            {"name": "idx", "shape": [1, 1], "datatype": "INT64", "data": [idx]},
        ]}  # fmt: skip
        return httpx.post(f"{server.url}/v2/models/faulty/infer", json=body, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(call, [0, 1, 9, 2, 3, 0, 1, 2]))
    statuses = [r.status_code for r in responses]
    # ONNX Runtime refused that request's data when it ran alone: the input is at fault.
    assert statuses == [200, 200, 400, 200, 200, 200, 200, 200]
    message = responses[2].json()["error"]
    assert "model 'faulty' version 1 failed on this input" in message
    assert "GatherElements" in message
    assert [r.json()["outputs"][0]["data"] for r in responses if r.status_code == 200] == [
        [10], [11], [12], [13], [10], [11], [12],
    ]  # fmt: skip


def test_unknown_route_is_json(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/v2/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]
    assert httpx.get(f"{server.url}/v2/models/nope").status_code == 404
    assert httpx.get(f"{server.url}/v2/models/add/versions/0").status_code == 400


def _read_reply(sock: socket.socket) -> bytes:
    """Reads until the JSON error body is complete (head and body may come in two segments)."""
    reply = b""
    while not reply.endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply


def test_slow_body_gets_408_not_a_stuck_request(server: ServerProcess) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b'POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"in'
        )
        time.sleep(0.2)
        sock.sendall(b"puts")  # a second chunk, then the client stalls
        started = time.monotonic()
        reply = _read_reply(sock)
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert b"not received within 1 s" in reply
    assert waited < 5


def test_headers_without_body_get_408(server: ServerProcess) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n")
        assert _read_reply(sock).startswith(b"HTTP/1.1 408")


def test_the_servers_max_sequence_length_bounds_a_version_published_without_one(
    tmp_path: Path,
) -> None:
    """A version's config is frozen when it is published: the setting bounds the old ones."""
    store = tmp_path / "store"
    unbounded = ModelConfig(ragged_inputs=(RaggedInput(input="x", lengths_input="lengths"),))
    publish(store, "ragged", models.ragged_model(tmp_path), config=unbounded)
    env = {"INDUCTIVE_MAX_SEQUENCE_LENGTH": "8"}
    with running_server(store, tmp_path, env) as server:
        for steps, status in ((8, 200), (9, 400)):
            x = {"name": "x", "shape": [1, steps, 2], "datatype": "FP32", "data": [0] * 2 * steps}
            response = httpx.post(f"{server.url}/v2/models/ragged/infer", json={"inputs": [x]})
            assert response.status_code == status, response.text
        assert "has length 9, above the longest this model takes (8)" in response.json()["error"]
