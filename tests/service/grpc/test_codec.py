"""ModelInfer's codec without a server: raw and typed contents into the arrays every door queues,
each malformed tensor refused with a message naming it, and results into raw or typed outputs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from model_store.schema import TensorSpec
from service.errors import BadRequestError
from service.grpc.codec import decode_infer, encode_infer
from service.grpc.protos import inference_pb2 as pb
from service.model_io.datatypes import NUMPY_DTYPES
from service.model_io.signature import ModelSignature

MAX_ELEMENTS = 1000
TYPES = [t for t in NUMPY_DTYPES if t != "FP16"]


def _served(inputs: dict[str, str], outputs: dict[str, str], labels: Any = None) -> Any:
    signature = ModelSignature(
        inputs={n: TensorSpec(name=n, datatype=t, shape=(-1, 3)) for n, t in inputs.items()},
        outputs={n: TensorSpec(name=n, datatype=t, shape=(-1, 3)) for n, t in outputs.items()},
        server_filled=frozenset(),
        ragged_axes={},
        ragged_max_lengths={},
        batched=True,
        max_batch_size=8,
        reject_non_finite=False,
        labels=labels or {},
    )
    return SimpleNamespace(name="m", version=3, signature=signature)


ALL = _served({f"in_{t}": t for t in NUMPY_DTYPES}, {f"out_{t}": t for t in NUMPY_DTYPES})
TYPED = _served({f"in_{t}": t for t in TYPES}, {f"out_{t}": t for t in TYPES})
ARRAYS = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": np.array([[0, 7, 255], [1, 2, 3]], np.uint8),
    "UINT16": np.array([[0, 7, 65535], [1, 2, 3]], np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1], [1, 2, 3]], np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1], [1, 2, 3]], np.uint64),
    "INT8": np.array([[-128, 0, 127], [1, 2, 3]], np.int8),
    "INT16": np.array([[-(2**15), 0, 2**15 - 1], [1, 2, 3]], np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1], [1, 2, 3]], np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1], [1, 2, 3]], np.int64),
    "FP16": np.array([[0.5, -1.0, 65504.0], [1, 2, 3]], np.float16),
    "FP32": np.array([[0.1, -1e30, 3.5], [1, 2, 3]], np.float32),
    "FP64": np.array([[0.1, -1e300, 3.5], [1, 2, 3]], np.float64),
    "BYTES": np.array([[b"a", b"", "é".encode()], [b"x" * 40, b"0", b"\x00"]], dtype=object),
}
FIELDS = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
    "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


def _raw(array: np.ndarray, datatype: str) -> bytes:
    if datatype != "BYTES":
        return array.tobytes()
    return b"".join(len(x).to_bytes(4, "little") + x for x in array.ravel())


def _request(datatypes: list[str], raw: bool) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    for t in datatypes:
        tensor = message.inputs.add(name=f"in_{t}", datatype=t, shape=[2, 3])
        if raw:
            message.raw_input_contents.append(_raw(ARRAYS[t], t))
        else:
            getattr(tensor.contents, FIELDS[t]).extend(ARRAYS[t].ravel().tolist())
    return message


def _refused(message: pb.ModelInferRequest, served: Any = ALL) -> str:
    with pytest.raises(BadRequestError) as info:
        decode_infer(message, served, MAX_ELEMENTS)
    return info.value.message


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_every_datatype_decodes_exactly(raw: bool) -> None:
    types = list(NUMPY_DTYPES) if raw else TYPES
    decoded = decode_infer(_request(types, raw), ALL if raw else TYPED, MAX_ELEMENTS)
    assert decoded.samples == 2
    assert decoded.request.all_binary is raw
    for t in types:
        got = decoded.request.inputs[f"in_{t}"]
        if t == "BYTES":  # validated BYTES become text, as ONNX Runtime takes them
            assert got.tolist() == [[x.decode() for x in row] for row in ARRAYS[t].tolist()]
        else:
            assert got.dtype == ARRAYS[t].dtype, t
            np.testing.assert_array_equal(got, ARRAYS[t])


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_every_datatype_encodes_exactly(raw: bool) -> None:
    request = decode_infer(_request(TYPES, raw), TYPED, MAX_ELEMENTS).request
    results = {f"out_{t}": ARRAYS[t] for t in TYPES}
    response = encode_infer(request, results, TYPED)
    assert (response.model_name, response.model_version) == ("m", "3")
    assert bool(response.raw_output_contents) is raw
    for i, out in enumerate(response.outputs):
        t = out.datatype
        assert out.name == f"out_{t}"
        assert list(out.shape) == [2, 3]
        if raw:
            assert response.raw_output_contents[i] == _raw(ARRAYS[t], t)
        else:
            got = np.array(list(getattr(out.contents, FIELDS[t])), dtype=ARRAYS[t].dtype)
            np.testing.assert_array_equal(got.reshape(2, 3), ARRAYS[t])


def test_an_fp16_output_makes_the_whole_response_raw() -> None:
    request = decode_infer(_request(TYPES, raw=False), TYPED, MAX_ELEMENTS).request
    response = encode_infer(request, {"out_FP16": ARRAYS["FP16"], "out_INT8": ARRAYS["INT8"]}, ALL)
    assert response.raw_output_contents == [ARRAYS["FP16"].tobytes(), ARRAYS["INT8"].tobytes()]
    assert not response.outputs[1].contents.int_contents


def test_classification_labels_and_parameters_round_trip() -> None:
    served = _served({"x": "FP32"}, {"y": "FP32"}, labels={"y": ("a", "b", "c")})
    message = pb.ModelInferRequest(model_name="m", id="req-1")
    message.inputs.add(name="x", datatype="FP32", shape=[1, 3]).contents.fp32_contents.extend(
        [0.0, 0.0, 0.0]
    )
    message.outputs.add(name="y").parameters["classification"].int64_param = 2
    message.parameters["timeout"].int64_param = 2500
    message.parameters["tag"].string_param = "kept"
    message.parameters["priority"].uint64_param = 1
    request = decode_infer(message, served, MAX_ELEMENTS).request
    assert request.timeout_s == 0.0025
    response = encode_infer(request, {"y": np.array([[0.1, 0.7, 0.2]], np.float32)}, served)
    assert response.id == "req-1"
    assert list(response.outputs[0].contents.bytes_contents) == [
        b"0.700000:1:b",
        b"0.200000:2:c",
    ]
    assert dict(response.parameters) == {"tag": pb.InferParameter(string_param="kept")}


def _one(datatype: str, shape: list[int], **contents: Any) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="x", datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    return message


@pytest.mark.parametrize(
    ("declared", "message", "expected"),
    [
        ("INT8", _one("INT8", [1, 3], int_contents=[1, 2, 300]), "must lie in -128..127"),
        ("UINT16", _one("UINT16", [1, 3], uint_contents=[1, 2, 70000]), "must lie in 0..65535"),
        ("FP32", _one("FP32", [1, 3], int_contents=[1, 2, 3]), "in contents.fp32_contents, not"),
        ("FP32", _one("FP32", [1, 3], fp32_contents=[1.0, 2.0]), "needs 3 elements, contents"),
        ("FP16", _one("FP16", [1, 3], fp32_contents=[1.0, 2.0, 3.0]), "FP16, which has no"),
        ("FP32", _one("FP32", [1, 2**40], fp32_contents=[1.0]), "above the limit of 1000"),
        ("FP32", _one("FP32", [2**62, 2**62, 2**62]), "above the limit of 1000"),
        ("FP32", _one("FP32", [1, -3]), "integers ≥ 0"),
        ("FP32", _one("NOPE", [1, 3]), "unknown datatype 'NOPE'"),
        ("FP32", _one("INT32", [2, 3], int_contents=[0] * 6), "expected datatype FP32, got INT32"),
        ("FP32", _one("FP32", [2, 2], fp32_contents=[0.0] * 4), "expected shape [-1, 3]"),
        ("FP32", _one("FP32", [9, 3], fp32_contents=[0.0] * 27), "above this model's max batch"),
    ],
    ids=[
        "int8-range", "uint16-range", "wrong-field", "too-few", "fp16-typed", "over-limit",
        "huge-product", "negative-dim", "unknown-datatype", "wrong-type", "wrong-shape",
        "batch-too-big",
    ],
)  # fmt: skip
def test_malformed_typed_tensors_are_refused(
    declared: str, message: pb.ModelInferRequest, expected: str
) -> None:
    assert expected in _refused(message, _served({"x": declared}, {"y": "FP32"}))


def test_malformed_raw_requests_are_refused() -> None:
    served = _served({"x": "FP32", "y": "FP32"}, {"z": "FP32"})
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype="FP32", shape=[1, 3])
    message.inputs.add(name="y", datatype="FP32", shape=[1, 3])
    message.raw_input_contents.append(b"\x00" * 12)
    assert "raw_input_contents has 1 entries for 2 inputs" in _refused(message, served)
    message.raw_input_contents.append(b"\x00" * 8)
    assert "needs 12 bytes, binary_data_size is 8" in _refused(message, served)
    message.raw_input_contents[1] = b"\x00" * 12
    message.inputs[1].contents.fp32_contents.append(1.0)
    assert "has contents although the request sends raw" in _refused(message, served)
    message.inputs[1].ClearField("contents")
    message.inputs[1].parameters["shared_memory_region"].string_param = "r"
    assert "shared memory region" in _refused(message, served)
    del message.inputs[1].parameters["shared_memory_region"]
    message.inputs[1].name = "x"
    assert "input 'x' is given twice" in _refused(message, served)


def test_bad_parameters_are_refused() -> None:
    served = _served({"x": "FP32"}, {"y": "FP32"})
    message = _one("FP32", [1, 3], fp32_contents=[1.0, 2.0, 3.0])
    message.parameters["timeout"].string_param = "soon"
    assert "'timeout' must be an int64_param" in _refused(message, served)
    del message.parameters["timeout"]
    message.outputs.add(name="y").parameters["classification"].int64_param = -1
    assert "classification must be an int64_param ≥ 0" in _refused(message, served)
    message.outputs[0].name = "nope"
    del message.outputs[0].parameters["classification"]
    assert "unknown output 'nope'" in _refused(message, served)
    assert "non-empty list" in _refused(pb.ModelInferRequest(model_name="m"), served)
