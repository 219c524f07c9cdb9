"""Plans cached per JSON header (service/protocol/request_plans.py) decode exactly what the full
decoder does, still check every request's values, and never keep what depends on the data."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from model_store.schema import Manifest, ModelConfig, Producer, TensorSpec
from service.batching.assemble import Layout
from service.errors import BadRequestError
from service.model_io.signature import ModelSignature
from service.protocol import decode_request
from service.protocol.request_plans import MAX_PLANS, RequestPlans
from service.protocol.validate import validate_request

X = TensorSpec(name="x", datatype="FP32", shape=(-1, 4))
N = TensorSpec(name="n", datatype="INT64", shape=(-1, 2))
OUT = TensorSpec(name="out", datatype="FP32", shape=(-1, 4))


def _plans(reject_non_finite: bool = False) -> RequestPlans:
    manifest = Manifest(name="m", inputs=(X, N), outputs=(OUT,), producer=Producer(package="t"))
    config = ModelConfig(reject_non_finite_inputs=reject_non_finite)
    signature = ModelSignature.build(manifest, config, max_batch_size=8)
    return RequestPlans(signature, Layout(signature, ()), max_elements=1000)


def _binary(batch: int, *, request_id: str | None = None, seed: int = 0) -> tuple[bytes, int]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 4)).astype(np.float32)
    n = rng.integers(0, 9, (batch, 2)).astype(np.int64)
    doc: dict[str, object] = {
        "inputs": [
            {"name": "x", "shape": [batch, 4], "datatype": "FP32",
             "parameters": {"binary_data_size": x.nbytes}},
            {"name": "n", "shape": [batch, 2], "datatype": "INT64",
             "parameters": {"binary_data_size": n.nbytes}},
        ],
        "parameters": {"binary_data_output": True, "tag": "t"},
    }  # fmt: skip
    if request_id is not None:
        doc["id"] = request_id
    header = orjson.dumps(doc)
    return header + x.tobytes() + n.tobytes(), len(header)


def test_a_cached_plan_decodes_what_the_full_decoder_does() -> None:
    plans = _plans()
    for seed in range(3):  # the first request makes the plan, the others use it
        body, header_length = _binary(2, seed=seed)
        decoded = plans.decode(body, header_length)
        expected = decode_request(body, header_length, max_elements=1000)
        assert decoded.samples == validate_request(expected, plans._signature) == 2
        assert decoded.request.inputs.keys() == expected.inputs.keys()
        for name, array in expected.inputs.items():
            np.testing.assert_array_equal(decoded.request.inputs[name], array)
            assert decoded.request.inputs[name].dtype == array.dtype
        assert decoded.request.outputs == expected.outputs
        assert decoded.request.binary_output
        assert decoded.request.parameters == {"tag": "t"}
    assert len(plans) == 1


def test_the_same_header_with_a_body_of_another_length_is_refused_as_before() -> None:
    plans = _plans()
    body, header_length = _binary(2)
    plans.decode(body, header_length)
    with pytest.raises(BadRequestError, match="binary"):
        plans.decode(body[:-8], header_length)
    with pytest.raises(BadRequestError, match="binary"):
        plans.decode(body + b"\0" * 8, header_length)


def test_values_are_checked_on_every_request_a_plan_decodes() -> None:
    plans = _plans(reject_non_finite=True)
    body, header_length = _binary(1)
    plans.decode(body, header_length)
    poisoned = bytearray(body)
    poisoned[header_length : header_length + 4] = np.float32(np.nan).tobytes()
    with pytest.raises(BadRequestError, match="NaN or Inf"):
        plans.decode(bytes(poisoned), header_length)
    assert len(plans) == 1


def test_headers_with_an_id_and_json_bodies_are_not_kept() -> None:
    plans = _plans()
    for i in range(3):
        body, header_length = _binary(1, request_id=f"r{i}")
        assert plans.decode(body, header_length).request.id == f"r{i}"
    json_body = orjson.dumps({"inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "n", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]},
    ]})  # fmt: skip
    plans.decode(json_body, None)
    assert len(plans) == 0


def test_plans_are_bounded() -> None:
    plans = _plans()
    for i in range(MAX_PLANS + 5):
        body, header_length = _binary(1 + i % 8)
        plans.decode(body.replace(b'"t"', b'"%04d"' % i, 1), header_length + 3)
    assert 0 < len(plans) <= MAX_PLANS
