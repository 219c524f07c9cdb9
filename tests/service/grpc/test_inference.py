"""The gRPC door of the real server process against `tritonclient.grpc` as shipped: every model
answers exactly as over HTTP (raw and typed contents), classification, metadata, statistics that
count what was sent and agree with /metrics, and each error class with its status."""

from __future__ import annotations

import functools
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.http as triton_http
from google.protobuf import json_format

from service.grpc.protos import health_pb2
from tests.service.conftest import ADD_LABELS
from tests.service.grpc.clients import (
    client,
    http_client,
    http_inputs,
    inputs,
    raw_status,
    status,
    stub,
    typed_outputs,
    typed_request,
)
from tests.service.helpers import ServerProcess

RNG = np.random.default_rng(19)
# One request per model of the test store, the ragged model with two sequence lengths.
CASES: dict[str, list[dict[str, np.ndarray]]] = {
    "add": [{"x": RNG.standard_normal((3, 4), np.float32),
             "y": RNG.standard_normal((3, 4), np.float32)}],
    "ragged": [{"x": RNG.standard_normal((2, t, 2), np.float32)} for t in (5, 9)],
    "faulty": [{"x": RNG.standard_normal((2, 4), np.float32),
                "idx": np.array([[3], [0]], np.int64)}],
    "all_types": [{
        "in_BOOL": np.array([[True, False, True], [False, True, True]]),
        "in_UINT8": np.array([[0, 9, 255], [1, 2, 3]], np.uint8),
        "in_UINT16": np.array([[0, 9, 65535], [1, 2, 3]], np.uint16),
        "in_UINT32": np.array([[0, 9, 2**32 - 1], [1, 2, 3]], np.uint32),
        "in_UINT64": np.array([[0, 9, 2**64 - 1], [1, 2, 3]], np.uint64),
        "in_INT8": np.array([[-128, 0, 127], [1, 2, 3]], np.int8),
        "in_INT16": np.array([[-(2**15), 0, 2**15 - 1], [1, 2, 3]], np.int16),
        "in_INT32": np.array([[-(2**31), 0, 2**31 - 1], [1, 2, 3]], np.int32),
        "in_INT64": np.array([[-(2**63), 0, 2**63 - 1], [1, 2, 3]], np.int64),
        "in_FP16": RNG.standard_normal((2, 3)).astype(np.float16),
        "in_FP32": RNG.standard_normal((2, 3)).astype(np.float32),
        "in_FP64": RNG.standard_normal((2, 3)),
        "in_BYTES": np.array([[b"a", b"", "é".encode()], [b"xyz", b"0", b"long " * 9]], object),
    }],
}  # fmt: skip


def _same(got: np.ndarray, want: np.ndarray, label: str) -> None:
    if want.dtype == object:
        assert got.tolist() == want.tolist(), label
    else:
        assert got.dtype == want.dtype, label
        np.testing.assert_array_equal(got, want, err_msg=label)


@pytest.mark.parametrize("model", list(CASES))
def test_every_model_answers_as_over_http(server: ServerProcess, model: str) -> None:
    grpc_client, http = client(server), http_client(server)
    channel, typed = stub(server)
    outputs = [o["name"] for o in http.get_model_metadata(model)["outputs"]]
    for i, arrays in enumerate(CASES[model]):
        over_http = http.infer(
            model,
            http_inputs(arrays),
            outputs=[triton_http.InferRequestedOutput(n, binary_data=True) for n in outputs],
        )
        raw = grpc_client.infer(model, inputs(arrays), request_id=f"r{i}")
        assert raw.get_response().id == f"r{i}"
        assert raw.get_response().model_version == "1"
        for name in outputs:
            _same(raw.as_numpy(name), over_http.as_numpy(name), f"{model} raw {name}")
        if "in_FP16" in arrays:
            continue  # FP16 has no typed contents field: raw only (the codec tests cover it)
        response = typed.ModelInfer(typed_request(model, arrays))
        for name, array in typed_outputs(response).items():
            _same(array, over_http.as_numpy(name), f"{model} typed {name}")
    channel.close()


def test_classification_matches_http(server: ServerProcess) -> None:
    x = np.array([[0.1, 0.9, 0.5, 0.2], [3.0, 1.0, 2.0, 4.0]], dtype=np.float32)
    arrays = {"x": x, "y": np.zeros_like(x)}
    got = (
        client(server)
        .infer("add", inputs(arrays), outputs=[triton.InferRequestedOutput("sum", class_count=2)])
        .as_numpy("sum")
    )
    want = (
        http_client(server)
        .infer(
            "add",
            http_inputs(arrays),
            outputs=[triton_http.InferRequestedOutput("sum", binary_data=True, class_count=2)],
        )
        .as_numpy("sum")
    )
    assert got.tolist() == want.tolist()
    assert got[0].tolist() == [f"0.900000:1:{ADD_LABELS[1]}".encode(), b"0.500000:2:south"]


def test_health_and_metadata(server: ServerProcess) -> None:
    c = client(server)
    assert c.is_server_live()
    assert c.is_server_ready()
    assert c.is_model_ready("add")
    assert c.is_model_ready("add", "1")
    meta = c.get_server_metadata(as_json=True)
    assert meta == httpx.get(f"{server.url}/v2").json()
    assert "statistics" in meta["extensions"]
    model = c.get_model_metadata("ragged", as_json=True)
    want = httpx.get(f"{server.url}/v2/models/ragged").json()
    for tensor in (*model["inputs"], *model["outputs"]):  # int64 travels as text in JSON
        tensor["shape"] = [int(d) for d in tensor["shape"]]
    assert model == {**want, "inputs": want["inputs"], "outputs": want["outputs"]}
    assert status(lambda: c.is_model_ready("nope"))[0] == "NOT_FOUND"
    assert status(lambda: c.get_model_metadata("add", "7")) == (
        "NOT_FOUND",
        "model 'add' version 7 is not served (served versions: 1)",
    )
    assert status(lambda: c.get_model_metadata("add", "x"))[0] == "INVALID_ARGUMENT"


def test_grpc_health_service(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        serving = health_pb2.HealthCheckResponse.SERVING
        assert check(health_pb2.HealthCheckRequest()).status == serving
        named = health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")
        assert check(named).status == serving
        code, message = raw_status(lambda: check(health_pb2.HealthCheckRequest(service="x")))
        assert (code, "unknown service 'x'" in message) == ("NOT_FOUND", True)
        watch = channel.unary_stream("/grpc.health.v1.Health/Watch")
        assert raw_status(lambda: list(watch(b"")))[0] == "UNIMPLEMENTED"


def test_methods_not_served_are_unimplemented_with_a_message(server: ServerProcess) -> None:
    c = client(server)
    code, message = status(lambda: c.get_model_config("add"))
    assert code == "UNIMPLEMENTED"
    assert "ModelConfig is not implemented" in message
    assert "ModelInfer" in message  # says what is served
    assert status(lambda: c.get_system_shared_memory_status())[0] == "UNIMPLEMENTED"
    with grpc.insecure_channel(server.grpc_address) as channel:
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        assert raw_status(lambda: list(stream(iter([b""]))))[0] == "UNIMPLEMENTED"
        other = channel.unary_unary("/some.Other/Method")
        assert raw_status(lambda: other(b""))[0] == "UNIMPLEMENTED"


def test_client_errors_map_to_their_status(server: ServerProcess) -> None:
    c = client(server)
    x = np.ones((1, 4), np.float32)
    cases = {
        "unknown model": (lambda: c.infer("nope", inputs({"x": x})), "NOT_FOUND"),
        "unknown version": (
            lambda: c.infer("add", inputs({"x": x, "y": x}), model_version="9"),
            "NOT_FOUND",
        ),
        "bad version": (
            lambda: c.infer("add", inputs({"x": x, "y": x}), model_version="v1"),
            "INVALID_ARGUMENT",
        ),
        "missing input": (lambda: c.infer("add", inputs({"x": x})), "INVALID_ARGUMENT"),
        "wrong shape": (
            lambda: c.infer("add", inputs({"x": x.reshape(2, 2), "y": x})),
            "INVALID_ARGUMENT",
        ),
        "non-finite": (
            lambda: c.infer("add", inputs({"x": x * np.inf, "y": x})),
            "INVALID_ARGUMENT",
        ),
        "model refuses the data": (
            lambda: c.infer("faulty", inputs({"x": x, "idx": np.array([[9]], np.int64)})),
            "INVALID_ARGUMENT",
        ),
        # 1 MiB is this server's INDUCTIVE_MAX_BODY_BYTES: grpcio refuses the message itself.
        "over the size limit": (
            lambda: c.infer("add", inputs({"x": np.ones((70_000, 4), np.float32), "y": x})),
            "RESOURCE_EXHAUSTED",
        ),
        "negative timeout": (
            lambda: c.infer("add", inputs({"x": x, "y": x}), timeout=-5),
            "INVALID_ARGUMENT",
        ),
        "sequence above max_length": (
            lambda: c.infer("ragged", inputs({"x": np.ones((1, 65, 2), np.float32)})),
            "INVALID_ARGUMENT",
        ),
    }
    for label, (call, expected) in cases.items():
        code, message = status(call)
        assert code == expected, (label, code, message)
        assert message, label
    assert c.is_server_ready()


def test_an_unparsable_message_is_invalid_argument(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        for method in ("ModelInfer", "ModelMetadata", "ModelStatistics"):
            call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")
            code, message = raw_status(functools.partial(call, b"\x0a\xff\xff"))
            assert code == "INVALID_ARGUMENT", (method, code, message)
            assert "does not parse" in message


def _stats_from_grpc(c: triton.InferenceServerClient, model: str) -> dict[str, Any]:
    message = c.get_inference_statistics(model)
    doc = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )

    def ints(value: Any, key: str = "") -> Any:  # uint64 travels as text in JSON
        if isinstance(value, dict):
            return {k: ints(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [ints(v) for v in value]
        return int(value) if key in UINT64 else value

    for stats in doc["model_stats"]:  # a field of Triton's message that our server never sets
        assert stats.pop("response_stats") == {}
    return ints(doc)


UINT64 = {"count", "ns", "last_inference", "inference_count", "execution_count", "batch_size"}


def _metric_sum(samples: dict[str, float], name: str, **labels: str) -> float:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        value
        for key, value in samples.items()
        if key.startswith(name + "{") and all(w in key for w in want)
    )


def test_statistics_count_what_was_sent_and_agree_with_metrics(server: ServerProcess) -> None:
    c, http = client(server), http_client(server)
    before = httpx.get(f"{server.url}/v2/models/add/stats").json()["model_stats"][0]
    x = np.ones((2, 4), np.float32)
    for _ in range(3):
        c.infer("add", inputs({"x": x, "y": x}))
        http.infer("add", http_inputs({"x": x, "y": x}))
    status(lambda: c.infer("add", inputs({"x": x, "y": x * np.nan})))
    over_grpc = _stats_from_grpc(c, "add")
    over_http = httpx.get(f"{server.url}/v2/models/add/stats").json()
    samples = server.metrics()
    assert over_grpc == over_http
    (stats,) = over_http["model_stats"]
    inference = stats["inference_stats"]
    # What was sent: 6 requests of 2 samples answered, 1 refused.
    assert stats["inference_count"] - before["inference_count"] == 12
    assert inference["success"]["count"] - before["inference_stats"]["success"]["count"] == 6
    assert inference["fail"]["count"] - before["inference_stats"]["fail"]["count"] == 1
    assert stats["last_inference"] > 0
    # The same numbers as /metrics.
    v = {"model": "add", "version": "1"}
    assert (
        stats["inference_count"]
        == samples['inductive_inference_count_total{model="add",version="1"}']
    )
    assert (
        stats["execution_count"]
        == samples['inductive_inference_exec_count_total{model="add",version="1"}']
    )
    requests = "inductive_inference_requests_total"
    assert inference["success"]["count"] == _metric_sum(samples, requests, outcome="success", **v)
    assert inference["fail"]["count"] == sum(
        _metric_sum(samples, requests, outcome=o, **v)
        for o in ("bad_request", "unavailable", "timeout", "error")
    )
    assert _metric_sum(samples, requests, outcome="success", protocol="grpc", **v) >= 3
    seconds = "inductive_inference_request_duration_seconds_sum"
    assert abs(inference["success"]["ns"] - 1e9 * _metric_sum(samples, seconds, **v)) < 10
    queue = "inductive_inference_queue_duration_seconds"
    assert inference["queue"]["count"] == _metric_sum(samples, queue + "_count", **v)
    assert abs(inference["queue"]["ns"] - 1e9 * _metric_sum(samples, queue + "_sum", **v)) < 10
    compute = "inductive_inference_compute_duration_seconds"
    batches = stats["batch_stats"]
    assert sum(b["compute_infer"]["count"] for b in batches) == stats["execution_count"]
    assert sum(b["compute_infer"]["count"] for b in batches) == _metric_sum(
        samples, compute + "_count", **v
    )
    phases = sum(
        b[p]["ns"] for b in batches for p in ("compute_input", "compute_infer", "compute_output")
    )
    assert abs(phases - 1e9 * _metric_sum(samples, compute + "_sum", **v)) < 1000
    assert stats["inference_count"] == sum(
        b["batch_size"] * b["compute_infer"]["count"] for b in batches
    )
