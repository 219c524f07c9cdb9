"""Fuzzing ModelInfer over gRPC with bytes sent as they are (a raw unary call, no client-side
serializer): random bytes, truncated requests, wrong datatypes, shapes that disagree with their
raw contents, huge declared shapes. Each is refused with INVALID_ARGUMENT and a message (random
bytes that happen to parse as a request naming an unknown model: NOT_FOUND), never UNKNOWN or
INTERNAL, and the server keeps serving with nothing in its log above INFO.

Derandomised and bounded like the REST fuzzing (test_fuzz.py): the same examples on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2

from service.model_io.datatypes import NUMPY_DTYPES
from tests.reliability.conftest import MAX_TENSOR_ELEMENTS
from tests.service.helpers import ServerProcess

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
INFER = "/inference.GRPCInferenceService/ModelInfer"
MODELS = {"add", "all_types", "ragged", "faulty"}
X = np.arange(4, dtype=np.float32).reshape(1, 4)


def _valid() -> service_pb2.ModelInferRequest:
    """A request the `add` model answers."""
    request = service_pb2.ModelInferRequest(model_name="add", id="fuzz")
    for name in ("x", "y"):
        request.inputs.add(name=name, datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(X.tobytes())
    request.outputs.add(name="sum").parameters["classification"].int64_param = 2
    return request


VALID = _valid().SerializeToString()


@pytest.fixture(scope="module")
def call(server: ServerProcess) -> Iterator[Callable[[bytes], tuple[str, str]]]:
    channel = grpc.insecure_channel(server.grpc_address)
    infer = channel.unary_unary(INFER)  # bytes in, bytes out: nothing checked on this side

    def send(data: bytes) -> tuple[str, str]:
        try:
            infer(data, timeout=30)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details() or ""
        return "OK", ""

    assert send(VALID) == ("OK", "")
    yield send
    channel.close()


def _refused(outcome: tuple[str, str], expected: str = "INVALID_ARGUMENT") -> None:
    code, message = outcome
    assert code == expected, outcome
    assert message.strip(), outcome


def _parses_naming_another_model(data: bytes) -> bool:
    try:
        request = service_pb2.ModelInferRequest.FromString(data)
    except Exception:
        return False
    return bool(request.model_name) and request.model_name not in MODELS


@FUZZ
@given(data=st.binary(max_size=512))
def _random_bytes(call: Callable[[bytes], tuple[str, str]], data: bytes) -> None:
    expected = "NOT_FOUND" if _parses_naming_another_model(data) else "INVALID_ARGUMENT"
    _refused(call(data), expected)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(VALID) - 1))
def _truncated(call: Callable[[bytes], tuple[str, str]], cut: int) -> None:
    _refused(call(VALID[:cut]))


@FUZZ
@given(
    data=st.binary(min_size=1, max_size=64),
    at=st.integers(min_value=0, max_value=len(VALID)),
)
def _garbage_inside(call: Callable[[bytes], tuple[str, str]], data: bytes, at: int) -> None:
    """Bytes spliced into a valid request: anything but a refusal must be a real answer."""
    mangled = VALID[:at] + data + VALID[at:]
    code, message = call(mangled)
    if _parses_naming_another_model(mangled):
        assert code == "NOT_FOUND", (code, message)
    else:
        assert code in ("OK", "INVALID_ARGUMENT"), (code, message)


@FUZZ
@given(
    datatype=st.one_of(
        st.sampled_from([t for t in NUMPY_DTYPES if t != "FP32"]), st.text(max_size=12)
    ).filter(lambda t: t != "FP32"),
    which=st.integers(min_value=0, max_value=1),
)
def _wrong_datatype(call: Callable[[bytes], tuple[str, str]], datatype: str, which: int) -> None:
    request = _valid()
    request.inputs[which].datatype = datatype
    _refused(call(request.SerializeToString()))


@FUZZ
@given(
    shape=st.lists(st.integers(min_value=0, max_value=64), max_size=4),
    raw_size=st.integers(min_value=0, max_value=64),
    which=st.integers(min_value=0, max_value=1),
)
def _shape_against_raw(
    call: Callable[[bytes], tuple[str, str]], shape: list[int], raw_size: int, which: int
) -> None:
    if shape == [1, 4] and raw_size == 16:
        return  # the one valid combination
    request = _valid()
    del request.inputs[which].shape[:]
    request.inputs[which].shape.extend(shape)
    request.raw_input_contents[which] = b"\x01" * raw_size
    _refused(call(request.SerializeToString()))


@FUZZ
@given(
    shape=st.lists(
        st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=40
    ).filter(lambda s: any(d < 0 for d in s) or len(s) > 32 or _elements(s) > MAX_TENSOR_ELEMENTS),
    typed=st.booleans(),
)
def _huge_or_negative_shape(
    call: Callable[[bytes], tuple[str, str]], shape: list[int], typed: bool
) -> None:
    request = _valid()
    del request.inputs[0].shape[:]
    request.inputs[0].shape.extend(shape)
    if typed:
        del request.raw_input_contents[:]
        for tensor in request.inputs:
            tensor.contents.fp32_contents.extend([1.0] * 4)
    _refused(call(request.SerializeToString()))


def _elements(shape: list[int]) -> int:
    total = 1
    for d in shape:
        total *= max(d, 0)
    return total


@FUZZ
@given(
    field=st.sampled_from(
        [
            "bool_contents",
            "int_contents",
            "int64_contents",
            "uint_contents",
            "uint64_contents",
            "fp64_contents",
            "bytes_contents",
        ]
    ),
    count=st.integers(min_value=0, max_value=8),
)
def _typed_contents_in_the_wrong_field(
    call: Callable[[bytes], tuple[str, str]], field: str, count: int
) -> None:
    request = _valid()
    del request.raw_input_contents[:]
    request.inputs[1].contents.fp32_contents.extend([1.0] * 4)
    values: list[Any] = [b"v"] * count if field == "bytes_contents" else [1] * count
    getattr(request.inputs[0].contents, field).extend(values)
    _refused(call(request.SerializeToString()))


@pytest.mark.parametrize(
    "case",
    [
        _random_bytes, _truncated, _garbage_inside, _wrong_datatype, _shape_against_raw,
        _huge_or_negative_shape, _typed_contents_in_the_wrong_field,
    ],
    ids=lambda f: f.__name__.strip("_"),
)  # fmt: skip
def test_malformed_model_infer_is_refused(
    call: Callable[[bytes], tuple[str, str]], server: ServerProcess, case: Any
) -> None:
    logged_before = len(server.log())  # the server is shared: only this test's lines count
    case(call)
    assert call(VALID) == ("OK", "")
    assert server.process.poll() is None
    log = server.log()[logged_before:]
    assert "Traceback" not in log
    assert " ERROR " not in log, log[-3000:]
    assert " WARNING " not in log, log[-3000:]
