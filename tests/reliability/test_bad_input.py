"""Hand-written bad requests against the real server: each gets the right status and a message
that names the problem, in JSON and in Triton's binary tensor extension; afterwards the server is
still healthy and answers a good request correctly.

`add` takes x, y FP32 [-1, 4] (batch ≤ 32) and refuses NaN/Inf (`reject_non_finite_inputs`);
`all_types` has one Identity per V2 datatype; `ragged` pads x along time (lengths by the server).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.reliability.conftest import MAX_BODY_BYTES, MAX_TENSOR_ELEMENTS
from tests.reliability.contract import error_message
from tests.service.helpers import ServerProcess

ADD = "/v2/models/add/infer"


def tensor(name: str, array: np.ndarray | list[Any], datatype: str = "FP32", **kw: Any) -> dict:
    data = np.asarray(array)
    return {"name": name, "shape": list(data.shape), "datatype": datatype,
            "data": data.ravel().tolist(), **kw}  # fmt: skip


def binary(name: str, array: np.ndarray, datatype: str = "FP32", size: int | None = None) -> dict:
    """A binary input header; `size` overrides the true byte size of `array`."""
    return {"name": name, "shape": list(array.shape), "datatype": datatype,
            "parameters": {"binary_data_size": array.nbytes if size is None else size}}  # fmt: skip


X = np.arange(8, dtype=np.float32).reshape(2, 4)
Y = np.ones((2, 4), np.float32)
GOOD = {"inputs": [tensor("x", X), tensor("y", Y)]}


@dataclass
class Case:
    """One bad request: a JSON document, or raw bytes with an optional binary header length."""

    status: int
    fragments: tuple[str, ...]
    json: Any = None
    content: bytes | None = None
    header_length: int | None = None
    path: str = ADD
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, url: str) -> httpx.Response:
        headers = dict(self.headers)
        if self.header_length is not None:
            headers["Inference-Header-Content-Length"] = str(self.header_length)
        content = orjson.dumps(self.json) if self.content is None else self.content
        return httpx.post(f"{url}{self.path}", content=content, headers=headers, timeout=30)


def bin_case(status: int, fragments: tuple[str, ...], inputs: list[dict], payload: bytes,
             *, header_length_delta: int = 0, path: str = ADD) -> Case:  # fmt: skip
    header = orjson.dumps({"inputs": inputs})
    return Case(status, fragments, content=header + payload,
                header_length=len(header) + header_length_delta, path=path)  # fmt: skip


def _non_finite(value: float) -> Case:
    x = X.copy()
    x[1, 2] = value
    return bin_case(400, ("input 'x'", "NaN or Inf"), [binary("x", x), binary("y", Y)],
                    x.tobytes() + Y.tobytes())  # fmt: skip


XY_BYTES = X.tobytes() + Y.tobytes()
VALID_HEADER = orjson.dumps({"inputs": [binary("x", X), binary("y", Y)]})
DEEP = 100_000

CASES: dict[str, Case] = {
    # --- datatype ---------------------------------------------------------------------------
    "wrong datatype json": Case(400, ("input 'x'", "expected datatype FP32, got INT32"),
                                {"inputs": [tensor("x", X.astype(int), "INT32"), tensor("y", Y)]}),
    "wrong datatype binary": bin_case(
        400, ("input 'x'", "expected datatype FP32, got FP64"),
        [binary("x", X.astype(np.float64), "FP64"), binary("y", Y)],
        X.astype(np.float64).tobytes() + Y.tobytes()),
    "unknown datatype": Case(400, ("input 'x'", "unknown datatype 'FP8'"),
                             {"inputs": [tensor("x", X, "FP8"), tensor("y", Y)]}),
    "data not numbers": Case(400, ("input 'x'", "not a FP32 tensor"),
                             {"inputs": [{**tensor("x", X), "data": ["a"] * 8}, tensor("y", Y)]}),
    "integer out of range": Case(
        400, ("input 'in_UINT8'", "not a UINT8 tensor"),
        {"inputs": [tensor("in_UINT8", [[1, 2, 300]], "UINT8")]},
        path="/v2/models/all_types/infer"),
    # --- shape and element count -------------------------------------------------------------
    "wrong shape": Case(400, ("input 'x'", "expected shape [-1, 4]", "got [2, 2, 2]"),
                        {"inputs": [tensor("x", X.reshape(2, 2, 2)), tensor("y", Y)]}),
    "count below shape": Case(400, ("input 'x'", "needs 8 elements, data has 7"),
                              {"inputs": [{**tensor("x", X), "data": list(range(7))},
                                          tensor("y", Y)]}),
    "count above shape": Case(400, ("input 'x'", "needs 4 elements, data has 8"),
                              {"inputs": [{**tensor("x", X), "shape": [1, 4]},
                                          tensor("y", Y[:1])]}),
    "ragged nested data": Case(400, ("input 'x'",),
                               {"inputs": [{**tensor("x", X), "data": [[1, 2, 3, 4], [5]]},
                                           tensor("y", Y)]}),
    "negative dimension": Case(400, ("input 'x'", "shape must be a list of at most 32 integers"),
                               {"inputs": [{**tensor("x", X), "shape": [-2, 4]}, tensor("y", Y)]}),
    "too many elements": Case(400, ("input 'x'", f"above the limit of {MAX_TENSOR_ELEMENTS}"),
                              {"inputs": [{**tensor("x", X), "shape": [2**30, 4]},
                                          tensor("y", Y)]}),
    "batch sizes differ": Case(400, ("batch size 1 differs",),
                               {"inputs": [tensor("x", X), tensor("y", Y[:1])]}),
    # --- non-finite values (the model's config refuses them) ---------------------------------
    "NaN": _non_finite(float("nan")),
    "+Inf": _non_finite(float("inf")),
    "-Inf": _non_finite(float("-inf")),
    "JSON number overflowing FP32": Case(
        400, ("input 'x'", "NaN or Inf"),
        content=b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,1e39]},'
                b'{"name":"y","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'),
    # --- inputs and outputs ------------------------------------------------------------------
    "missing input": Case(400, ("missing input(s) y",), {"inputs": [tensor("x", X)]}),
    "extra input": Case(400, ("unknown input 'z'",),
                        {"inputs": [tensor("x", X), tensor("y", Y), tensor("z", Y)]}),
    "input twice": Case(400, ("input 'x' is given twice",),
                        {"inputs": [tensor("x", X), tensor("x", X), tensor("y", Y)]}),
    "no inputs": Case(400, ("'inputs' must be a non-empty list",), {"inputs": []}),
    "unknown output": Case(400, ("unknown output 'nope'",),
                           {**GOOD, "outputs": [{"name": "nope"}]}),
    "classify BYTES output": Case(
        400, ("output 'out_BYTES' is BYTES and cannot be classified",),
        {"inputs": [tensor(f"in_{t}", [[1, 0, 1]], t) for t in (
            "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
            "FP16", "FP32", "FP64")] + [tensor("in_BYTES", [["a", "b", "c"]], "BYTES")],
         "outputs": [{"name": "out_BYTES", "parameters": {"classification": 2}}]},
        path="/v2/models/all_types/infer"),
    # --- binary tensor extension -------------------------------------------------------------
    "header length above body": bin_case(
        400, ("Inference-Header-Content-Length is", "but the body has"),
        [binary("x", X), binary("y", Y)], XY_BYTES, header_length_delta=len(XY_BYTES) + 100),
    "header length below JSON": bin_case(
        400, ("not valid JSON",), [binary("x", X), binary("y", Y)], XY_BYTES,
        header_length_delta=-5),
    "header length not a number": Case(400, ("Inference-Header-Content-Length must be an integer",),
                                       content=VALID_HEADER + XY_BYTES,
                                       headers={"Inference-Header-Content-Length": "12abc"}),
    "binary body shorter than sizes": bin_case(
        400, ("input 'y'", "runs past the end of the body"), [binary("x", X), binary("y", Y)],
        XY_BYTES[:-4]),
    "binary body longer than sizes": bin_case(
        400, ("add up to 64 bytes", "carries 68 binary bytes"), [binary("x", X), binary("y", Y)],
        XY_BYTES + b"\0\0\0\0"),
    "binary_data_size below shape": bin_case(
        400, ("input 'x'", "needs 32 bytes, binary_data_size is 16"),
        [binary("x", X, size=16), binary("y", Y, size=48)], XY_BYTES),
    "binary_data_size not an integer": bin_case(
        400, ("input 'x'", "binary_data_size must be an integer"),
        [binary("x", X, size="32"), binary("y", Y)], XY_BYTES),  # type: ignore[arg-type]
    "BYTES element past the end": bin_case(
        400, ("input 'in_BYTES'", "BYTES element 1 claims 9 bytes"),
        [{"name": "in_BYTES", "shape": [1, 3], "datatype": "BYTES",
          "parameters": {"binary_data_size": 9}}],
        (1).to_bytes(4, "little") + b"a" + (9).to_bytes(4, "little"),
        path="/v2/models/all_types/infer"),
    # --- malformed documents -----------------------------------------------------------------
    "truncated JSON": Case(400, ("not valid JSON",), content=orjson.dumps(GOOD)[:-7]),
    "invalid UTF-8": Case(400, ("not valid JSON",),
                          content=orjson.dumps(GOOD).replace(b'"x"', b'"x\xff\xfe"')),
    "deeply nested JSON": Case(
        400, ("not valid JSON", "depth"),
        content=b'{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":'
                + b"[" * DEEP + b"]" * DEEP + b"}]}"),
    "not an object": Case(400, ("must be a JSON object",), content=b"[1, 2, 3]"),
    "empty body": Case(400, ("not valid JSON",), content=b""),
    "id not a string": Case(400, ("'id' must be a string",), {**GOOD, "id": 7}),
    "bad timeout": Case(400, ("parameter 'timeout'",), {**GOOD, "parameters": {"timeout": -1}}),
    # --- batch -------------------------------------------------------------------------------
    "empty batch": Case(400, ("empty batch",),
                        {"inputs": [tensor("x", np.zeros((0, 4))), tensor("y", np.zeros((0, 4)))]}),
    "batch above max": Case(400, ("batch size 33", "above this model's max batch size 32"),
                            {"inputs": [tensor("x", np.zeros((33, 4))),
                                        tensor("y", np.zeros((33, 4)))]}),
    # --- size ----------------------------------------------------------------------------------
    "body above the limit": Case(413, (f"limit of {MAX_BODY_BYTES} bytes",),
                                 content=b" " * (MAX_BODY_BYTES + 1)),
    # --- models and versions -----------------------------------------------------------------
    "unknown model": Case(404, ("unknown model 'nope'",), GOOD, path="/v2/models/nope/infer"),
    "unknown version": Case(404, ("model 'add' version 9 is not served", "served versions: 1"),
                            GOOD, path="/v2/models/add/versions/9/infer"),
    "version not a number": Case(400, ("model version must be a positive integer", "'x1'"),
                                 GOOD, path="/v2/models/add/versions/x1/infer"),
    "version zero": Case(400, ("positive integer",), GOOD, path="/v2/models/add/versions/0/infer"),
    "version above int64": Case(400, ("positive integer",), GOOD,
                                path=f"/v2/models/add/versions/{2**64}/infer"),
    "name ../x": Case(404, ("no route POST",), GOOD, path="/v2/models/..%2Fx/infer"),
    "name ..": Case(404, ("unknown model '..'",), GOOD, path="/v2/models/%2E%2E/infer"),
    "name with NUL": Case(404, ("unknown model",), GOOD, path="/v2/models/a%00b/infer"),
    "name of 5k characters": Case(404, ("unknown model 'aaaa",), GOOD,
                                  path=f"/v2/models/{'a' * 5_000}/infer"),
    # Above INDUCTIVE_MAX_HEADER_LINE_BYTES (8 KiB by default): refused before it is routed.
    "name of 10k characters": Case(414, ("request target is above 8192 bytes",), GOOD,
                                   path=f"/v2/models/{'a' * 10_000}/infer"),
    # '²' passes str.isdigit() but int() refuses it (was a 500).
    "superscript digit as version": Case(400, ("positive integer",), GOOD,
                                         path="/v2/models/add/versions/%C2%B2/infer"),
    # Was a 200 with NaN outputs (lengths filled as 0) while an explicit lengths=0 got 400.
    "ragged input with an empty time axis": Case(
        400, ("input 'x'",), {"inputs": [tensor("x", np.zeros((1, 0, 2)))]},
        path="/v2/models/ragged/infer"),
    # 0 elements pass the element limit; numpy's reshape then raised ValueError (was a 500).
    "zero-element tensor with a dimension >= 2**63 (JSON)": Case(
        400, ("input 'x'",),
        {"inputs": [{**tensor("x", X), "shape": [2**63, 0], "data": []}, tensor("y", Y)]}),
    "zero-element tensor with a dimension >= 2**63 (binary)": bin_case(
        400, ("input 'x'",),
        [{**binary("x", X, size=0), "shape": [2**62, 0]}, binary("y", Y)], Y.tobytes()),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_request_is_refused_with_a_message_naming_the_problem(
    server: ServerProcess, case: Case
) -> None:
    message = error_message(case.send(server.url), case.status)
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    # A message names the problem; it never echoes a whole hostile input back.
    assert len(message) < 1000


def test_body_above_the_limit_without_content_length_is_refused(server: ServerProcess) -> None:
    """Chunked upload: the server stops at the limit instead of buffering everything."""

    def chunks() -> Any:
        for _ in range(64):
            yield b" " * (64 * 1024)  # 4 MiB in all, the limit is 1 MiB

    response = httpx.post(f"{server.url}{ADD}", content=chunks(), timeout=30)
    assert f"limit of {MAX_BODY_BYTES} bytes" in error_message(response, 413)


@pytest.mark.parametrize("suffix", ["", "/ready", "/config"])
def test_metadata_with_a_superscript_version_is_a_json_400(
    server: ServerProcess, suffix: str
) -> None:
    response = httpx.get(f"{server.url}/v2/models/add/versions/%C2%B2{suffix}")
    assert "positive integer" in error_message(response, 400)


def test_server_is_healthy_and_correct_after_the_matrix(server: ServerProcess) -> None:
    assert server.process.poll() is None, "the server died during the bad-input matrix"
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    response = httpx.post(f"{server.url}{ADD}", json=GOOD, timeout=30)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    np.testing.assert_array_equal(np.asarray(out["data"], np.float32).reshape(out["shape"]), X + Y)
    binary_response = httpx.post(
        f"{server.url}{ADD}",
        content=VALID_HEADER + XY_BYTES,
        headers={"Inference-Header-Content-Length": str(len(VALID_HEADER))},
        timeout=30,
    )
    assert binary_response.status_code == 200, binary_response.text
