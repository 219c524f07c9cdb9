"""Large JSON bodies: `"data"` arrays without strings are cut out before parsing
(service/protocol/json_tensors.py) and must decode exactly as the ordinary parse does, while a
body whose data does not match its shape is refused before the data is parsed."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import service.protocol.decode as decode_module
from service.errors import BadRequestError
from service.protocol import decode_request
from service.protocol.json_tensors import cut_data_arrays

LIMIT = 10**7


@pytest.fixture
def scan_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan runs from 64 KiB; these bodies are small, so it runs for all of them."""
    monkeypatch.setattr(decode_module, "SCAN_FROM_BYTES", 0)


def _both_ways(body: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """(scanned, ordinary): each the decoded inputs and parameters, or the 400's message."""
    outcomes: list[tuple[object, object]] = []
    for threshold in (0, 10**12):
        monkeypatch.setattr(decode_module, "SCAN_FROM_BYTES", threshold)
        try:
            request = decode_request(body, None, max_elements=LIMIT)
        except BadRequestError as exc:
            outcomes.append(("error", exc.message))
        else:
            outcomes.append(
                (
                    {k: (v.dtype.str, v.shape, v.tolist()) for k, v in request.inputs.items()},
                    request.parameters,
                )
            )
    return outcomes[0], outcomes[1]


def test_flat_and_nested_numeric_data_decode_as_the_ordinary_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = (
        b'{"id":"r","inputs":[{"name":"a","shape":[2,3],"datatype":"FP32",'
        b'"data" : [ [1, 2.5e1, -3] ,\n[4,5,6] ]},'
        b'{"name":"b","shape":[3],"datatype":"INT64","data":[7,8,9]},'
        b'{"name":"data","shape":[2],"datatype":"BOOL","data":[true,false]},'
        b'{"name":"s","shape":[2],"datatype":"BYTES","data":["x,[1]","data"]},'
        b'{"name":"e","shape":[0],"datatype":"FP32","data":[]}],'
        b'"parameters":{"data":[1,2],"note":"the \\"data\\" key"}}'
    )
    scanned, ordinary = _both_ways(body, monkeypatch)
    assert scanned == ordinary
    # The escaped quotes make the scan step aside; without them it cuts the arrays of scalars.
    plain = body.replace(b',"note":"the \\"data\\" key"', b"")
    cut = cut_data_arrays(plain)
    assert cut is not None
    skeleton, slots = cut
    assert [bytes(s.text()) for s in slots] == [
        b"[ [1, 2.5e1, -3] ,\n[4,5,6] ]", b"[7,8,9]", b"[true,false]", b"[]", b"[1,2]",
    ]  # fmt: skip
    assert b'"x,[1]"' in skeleton  # strings stay for the ordinary parse
    scanned, ordinary = _both_ways(plain, monkeypatch)
    assert scanned == ordinary


@pytest.mark.usefixtures("scan_everything")
def test_data_not_matching_the_shape_is_refused_with_the_counts() -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0.5] * 1000}]}
    )
    with pytest.raises(BadRequestError, match=r"shape \[1, 4\] needs 4 elements, data has 1000"):
        decode_request(body, None, max_elements=LIMIT)


@pytest.mark.usefixtures("scan_everything")
@pytest.mark.parametrize(
    "data",
    [b"[1,,2]", b"[1,2,]", b"[[1,2],3]]", b"[1 2 3]", b"[1,2", b"[-]", b"[1e,2,3]"],
)
def test_malformed_numeric_data_is_a_400(data: bytes) -> None:
    body = b'{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":' + data + b"}]}"
    with pytest.raises(BadRequestError):
        decode_request(body, None, max_elements=LIMIT)


numbers = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
spaces = st.sampled_from(["", " ", "\n", "\t ", "  "])


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(numbers, min_size=1, max_size=5), min_size=1, max_size=5),
    gap=spaces,
    declared_extra=st.integers(-1, 1),
)
def test_any_numeric_json_tensor_decodes_as_the_ordinary_parse(
    rows: list[list[float]], gap: str, declared_extra: int
) -> None:
    flat = [v for row in rows for v in row]
    data = gap.join(["[", ",".join(gap + repr(v) + gap for v in flat), "]"])
    shape = [max(len(flat) + declared_extra, 0)]
    body = (
        f'{{"inputs":[{{"name":"x","shape":{shape},"datatype":"FP64","data"{gap}:{gap}{data}}}]}}'
    ).encode()
    with pytest.MonkeyPatch.context() as monkeypatch:
        scanned, ordinary = _both_ways(body, monkeypatch)
    assert scanned == ordinary  # the same tensor, or the same 400 for a count that differs
