"""Talking to the gRPC door as Triton's and KServe's clients do: `tritonclient.grpc` as shipped,
and its generated stub for what its high-level client cannot send (typed contents)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as triton
import tritonclient.http as triton_http
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from tests.service.helpers import ServerProcess

# Where a datatype's elements go in InferTensorContents (FP16 has no field: raw only).
CONTENTS = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
    "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


def client(server: ServerProcess) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.grpc_address)


def http_client(server: ServerProcess) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(server.url.removeprefix("http://"))


def inputs(arrays: dict[str, np.ndarray]) -> list[triton.InferInput]:
    """tritonclient.grpc inputs: always raw_input_contents."""
    out = []
    for name, array in arrays.items():
        tensor = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        out.append(tensor)
    return out


def http_inputs(arrays: dict[str, np.ndarray]) -> list[triton_http.InferInput]:
    out = []
    for name, array in arrays.items():
        tensor = triton_http.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=True)
        out.append(tensor)
    return out


def stub(server: ServerProcess) -> tuple[grpc.Channel, service_pb2_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(server.grpc_address)
    return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)


def typed_request(model: str, arrays: dict[str, np.ndarray]) -> service_pb2.ModelInferRequest:
    """A ModelInferRequest carrying every tensor in its typed contents field."""
    request = service_pb2.ModelInferRequest(model_name=model)
    for name, array in arrays.items():
        datatype = np_to_triton_dtype(array.dtype)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=array.shape)
        getattr(tensor.contents, CONTENTS[datatype]).extend(array.ravel().tolist())
    return request


def typed_outputs(response: service_pb2.ModelInferResponse) -> dict[str, np.ndarray]:
    """Outputs of a typed response (no raw_output_contents) as arrays."""
    assert not response.raw_output_contents
    out = {}
    for tensor in response.outputs:
        values = list(getattr(tensor.contents, CONTENTS[tensor.datatype]))
        if tensor.datatype == "BYTES":
            array = np.array(values, dtype=object)
        else:
            array = np.array(values, dtype=triton_http.triton_to_np_dtype(tensor.datatype))
        out[tensor.name] = array.reshape(list(tensor.shape))
    return out


def status(call: Callable[[], Any]) -> tuple[str, str]:
    """(gRPC status name, message) of a call through tritonclient that must fail."""
    try:
        call()
    except InferenceServerException as exc:
        return str(exc.status()).removeprefix("StatusCode."), str(exc.message())
    raise AssertionError("the call succeeded")


def raw_status(call: Callable[[], Any]) -> tuple[str, str]:
    """(gRPC status name, details) of a call through a grpc stub or channel that must fail."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""
    raise AssertionError("the call succeeded")
