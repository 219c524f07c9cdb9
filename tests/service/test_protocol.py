"""The wire format without a server: arbitrary bodies raise only BadRequestError (never a 500),
and binary/JSON tensors of every datatype survive decode → encode unchanged."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from model_store.schema import Manifest, ModelConfig, Producer, RaggedInput, TensorSpec
from service.errors import BadRequestError
from service.model_io.datatypes import NUMPY_DTYPES
from service.model_io.signature import ModelSignature
from service.protocol import decode_request, encode_response
from service.protocol.validate import validate_request

SPEC = TensorSpec(name="x", datatype="FP32", shape=(-1, 4))
SIGNATURE = ModelSignature.build(
    Manifest(name="m", inputs=(SPEC,), outputs=(SPEC,), producer=Producer(package="t")),
    ModelConfig(),
    max_batch_size=8,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
tensor = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "y", ""]),
     "datatype": st.sampled_from([*NUMPY_DTYPES, "FP8", 3]) | json_values,
     "shape": st.lists(st.integers(-2, 6), max_size=4) | json_values},
    optional={"data": json_values,
              "parameters": st.fixed_dictionaries({}, optional={
                  "binary_data_size": st.integers(-1, 40) | json_values})}
)  # fmt: skip
request = st.fixed_dictionaries(
    {"inputs": st.lists(tensor, max_size=3) | json_values},
    optional={"outputs": json_values, "parameters": json_values, "id": json_values},
)


def _decode_and_validate(body: bytes, header_length: int | None) -> None:
    """A BadRequestError (400, with a message), or a request accepted because it truly is one
    `x` of FP32 [n, 4] with 1 ≤ n ≤ 8 (random data can form one): anything else fails."""
    refused: BadRequestError | None = None
    try:
        request = decode_request(body, header_length, max_elements=1000)
        samples = validate_request(request, SIGNATURE)
    except BadRequestError as exc:
        refused = exc
    if refused is not None:
        assert refused.status == 400
        assert refused.message.strip()
        return
    assert list(request.inputs) == ["x"], request.inputs
    assert request.datatypes == {"x": "FP32"}
    x = request.inputs["x"]
    assert x.dtype == np.float32
    assert x.ndim == 2
    assert x.shape[1] == 4
    assert 1 <= x.shape[0] <= 8
    assert samples == x.shape[0]


def _x(**fields: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0.5] * 4,
                        **fields}]}  # fmt: skip


# Bodies that decode but break the signature, which only validation refuses (random generation
# seldom forms one), and one valid body, which must be accepted.
@example(doc=_x(name="y"), tail=b"", header_extra=0)
@example(doc=_x(datatype="INT32", data=[1] * 4), tail=b"", header_extra=0)
@example(doc=_x(shape=[4], data=[0.5] * 4), tail=b"", header_extra=0)
@example(doc=_x(shape=[0, 4], data=[]), tail=b"", header_extra=0)
@example(doc=_x(shape=[9, 4], data=[0.5] * 36), tail=b"", header_extra=0)
@example(doc=_x(shape=[1, 2, 2]), tail=b"", header_extra=0)
@example(doc=_x(), tail=b"", header_extra=0)
@settings(max_examples=300, deadline=None)
@given(doc=request, tail=st.binary(max_size=48), header_extra=st.integers(-4, 4))
def test_structured_garbage_is_a_bad_request(doc: dict[str, Any], tail: bytes,
                                             header_extra: int) -> None:  # fmt: skip
    header = orjson.dumps(doc)
    _decode_and_validate(header, None)
    _decode_and_validate(header + tail, len(header) + header_extra)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200), header_length=st.none() | st.integers(-5, 250))
def test_raw_garbage_is_a_bad_request(body: bytes, header_length: int | None) -> None:
    _decode_and_validate(body, header_length)


def _binary_bytes(array: np.ndarray) -> bytes:
    return b"".join(struct.pack("<I", len(x)) + x for x in array.reshape(-1))


@pytest.mark.parametrize("datatype", list(NUMPY_DTYPES))
@pytest.mark.parametrize("binary", [True, False])
def test_every_datatype_round_trips(datatype: str, binary: bool) -> None:
    rng = np.random.default_rng(0)
    if datatype == "BYTES":
        array = np.array([[b"a", b""], [b"\xc3\xa9", b"xyz"]], dtype=object)
        raw = _binary_bytes(array)
        data: Any = [x.decode() for x in array.reshape(-1)]
    else:
        array = (rng.random((2, 2)) * 100).astype(NUMPY_DTYPES[datatype])
        raw = array.tobytes()
        data = array.reshape(-1).tolist()
    entry: dict[str, Any] = {"name": "t", "shape": [2, 2], "datatype": datatype}
    if binary:
        entry["parameters"] = {"binary_data_size": len(raw)}
    else:
        entry["data"] = data
    header = orjson.dumps({"inputs": [entry], "parameters": {"binary_data_output": binary}})
    decoded = decode_request(header + raw if binary else header,
                             len(header) if binary else None, max_elements=100)  # fmt: skip
    assert decoded.inputs["t"].tolist() == array.tolist()
    body, json_length = encode_response(decoded, decoded.inputs, model_name="m", model_version=1,
                                        labels={})  # fmt: skip
    if binary:
        assert json_length is not None
        assert body[json_length:] == raw
        out = orjson.loads(body[:json_length])["outputs"][0]
        assert out["parameters"]["binary_data_size"] == len(raw)
    else:
        assert json_length is None
        out = orjson.loads(body)["outputs"][0]
        if datatype == "BYTES":
            assert out["data"] == data
        else:  # JSON numbers parse back to exactly the values sent
            got = np.asarray(out["data"], dtype=NUMPY_DTYPES[datatype]).reshape(2, 2)
            np.testing.assert_array_equal(got, array)
    assert out["datatype"] == datatype
    assert out["shape"] == [2, 2]


def _refusal(entry: dict[str, Any], raw: bytes | None = None, max_elements: int = 1000) -> str:
    header = orjson.dumps({"inputs": [entry]})
    body, length = (header, None) if raw is None else (header + raw, len(header))
    with pytest.raises(BadRequestError) as info:
        decode_request(body, length, max_elements=max_elements)
    return info.value.message


@pytest.mark.parametrize("shape", [[2**63, 0], [2**62, 0], [0, 1001], [40, 40, 0]])
@pytest.mark.parametrize("binary", [True, False])
def test_an_empty_tensor_with_absurd_dimensions_is_a_bad_request(
    shape: list[int], binary: bool
) -> None:
    """Zero elements pass the element limit; the dimensions themselves must not reach numpy."""
    entry: dict[str, Any] = {"name": "x", "shape": shape, "datatype": "FP32"}
    if binary:
        entry["parameters"] = {"binary_data_size": 0}
    else:
        entry["data"] = []
    message = _refusal(entry, b"" if binary else None)
    assert "input 'x'" in message
    assert "limit of 1000" in message


def test_an_empty_tensor_with_sane_dimensions_still_decodes() -> None:
    header = orjson.dumps({"inputs": [{"name": "x", "shape": [0, 4], "datatype": "FP32",
                                       "data": []}]})  # fmt: skip
    assert decode_request(header, None, max_elements=1000).inputs["x"].shape == (0, 4)


def test_a_bytes_count_the_data_cannot_hold_is_refused_before_allocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_allocation(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("allocated before checking the data")

    monkeypatch.setattr("service.protocol.decode.np.empty", no_allocation)
    entry = {"name": "s", "shape": [1, 1 << 24], "datatype": "BYTES",
             "parameters": {"binary_data_size": 4}}  # fmt: skip
    message = _refusal(entry, bytes(4), max_elements=1 << 24)
    assert message == "input 's': BYTES data ends after 1 of 16777216 elements"


def _sequence_request(steps: int) -> bytes:
    x = {"name": "x", "shape": [1, steps, 2], "datatype": "FP32", "data": [0.0] * (2 * steps)}
    return orjson.dumps({"inputs": [x]})


@pytest.mark.parametrize(
    ("own", "server_default", "longest"),
    [(None, None, 500), (64, None, 64), (None, 10, 10), (64, 10, 64)],
    ids=["unbounded", "the model's", "the server's", "the model's over the server's"],
)
def test_a_ragged_axis_is_bounded_by_the_models_max_length_else_the_servers(
    own: int | None, server_default: int | None, longest: int
) -> None:
    seq = TensorSpec(name="x", datatype="FP32", shape=(-1, -1, 2))
    manifest = Manifest(name="m", inputs=(seq,), outputs=(SPEC,), producer=Producer(package="t"))
    config = ModelConfig(ragged_inputs=(RaggedInput(input="x", max_length=own),))
    signature = ModelSignature.build(manifest, config, 8, server_default)
    for steps in (longest, longest + 1):
        request = decode_request(_sequence_request(steps), None, max_elements=10_000)
        if steps == longest or own is server_default is None:
            assert validate_request(request, signature) == 1
            continue
        with pytest.raises(
            BadRequestError,
            match=rf"has length {steps}, above the longest this model takes \({longest}\)",
        ):
            validate_request(request, signature)
