"""benchmarks.grpc_load on the tiny store: the body h2load replays is a ModelInfer call the server
answers with the model's outputs, and a run counts as measured only when the server confirms
every call h2load counted (a refused call is an HTTP 200 too, with a non-zero grpc-status)."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from tritonclient.grpc import service_pb2

from benchmarks.grpc_load import measured
from benchmarks.grpc_wire import infer_request
from benchmarks.harness.servers import running_server
from benchmarks.workload import load_workload

needs_h2load = pytest.mark.skipif(
    shutil.which("h2load") is None,
    reason="h2load is not installed (apt-get install nghttp2-client)",
)


def test_the_body_is_a_model_infer_call_answered_with_the_models_outputs(
    tiny_store: Path, tmp_path: Path
) -> None:
    workload = load_workload(tiny_store, "add", tmp_path / "cache")
    body = infer_request("add", workload.samples[0])
    assert body[0] == 0  # not compressed
    assert int.from_bytes(body[1:5], "big") == len(body) - 5
    session = ort.InferenceSession(str(workload.model_path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, workload.samples[0])
    with (
        running_server(tiny_store, tmp_path) as server,
        grpc.insecure_channel(server.grpc_address) as channel,
    ):
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        response = service_pb2.ModelInferResponse.FromString(call(body[5:]))
    got = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(expected.shape)
    np.testing.assert_array_equal(got, expected)


@needs_h2load
def test_h2load_counts_are_confirmed_by_the_server(tiny_store: Path, tmp_path: Path) -> None:
    workload = load_workload(tiny_store, "add", tmp_path / "cache")
    good, bad = tmp_path / "good.bin", tmp_path / "bad.bin"
    good.write_bytes(infer_request("add", workload.samples[0]))
    # A call the server refuses (the model has no input 'z'), with HTTP status 200 all the same.
    bad.write_bytes(infer_request("add", {"z": np.zeros((1, 4), np.float32)}))
    with running_server(tiny_store, tmp_path) as server:
        load = {"requests": 400, "connections": 4, "streams": 2}
        result = measured(server, good, "add", core=None, **load)
        assert result.requests == 400
        assert result.errors == 0
        assert 0 < result.latency_ms["p50"] <= result.latency_ms["p99"] <= result.latency_ms["max"]
        with pytest.raises(
            RuntimeError, match="h2load counted 400 HTTP 200s; the server answered 0"
        ):
            measured(server, bad, "add", core=None, **load)
