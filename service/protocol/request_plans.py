"""Binary requests decoded by a plan made once per distinct JSON header.

A client of the binary extension sends the same JSON header with every request of a given shape
(`{"inputs":[{"name":"x","shape":[1,1,28,28],"datatype":"FP32","parameters":{"binary_data_size":
3136}}],…}`): only the bytes after it change. Parsing and checking that header was a quarter of
the event loop's time per `cnn` request (benchmarks/results/profile/). A `RequestPlan` keeps what
the header decided once it has passed every check — input names, datatypes, shapes and where
each tensor lies in the body, the batch size, the outputs asked for, the batch key — and a later
request with the same header bytes only cuts its tensors out of the body with `np.frombuffer`.

Checks on the tensors' values (finite floats, lengths, text) still run on every request that has
them. A header with an `id` is not kept (it differs per request, a plan would never be reused),
nor one with BYTES or JSON-encoded inputs, whose layout depends on the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from service.batching.assemble import Layout, batch_key
from service.model_io.signature import ModelSignature
from service.protocol.decode import InferRequest, RequestedOutput, decode_request
from service.protocol.validate import check_structure, check_values, needs_value_checks

# Distinct headers kept per model version; more (a client varying shapes widely) start afresh.
MAX_PLANS = 256


@dataclass(frozen=True, slots=True)
class _Tensor:
    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    offset: int  # from the start of the body


@dataclass(frozen=True, slots=True)
class RequestPlan:
    body_length: int
    tensors: tuple[_Tensor, ...]
    datatypes: dict[str, str]
    outputs: list[RequestedOutput] | None
    binary_output: bool
    timeout_s: float | None
    priority: int
    parameters: dict[str, Any]
    samples: int
    key: tuple[object, ...]
    value_checks: bool

    def request(self, body: bytes) -> InferRequest:
        inputs = {t.name: np.ndarray(t.shape, t.dtype, body, t.offset) for t in self.tensors}
        # The plan's dicts and lists are shared by its requests: nothing downstream writes to
        # them (validation replaces tensors in `inputs`, the request's own dict).
        return InferRequest(
            id=None,
            inputs=inputs,
            datatypes=self.datatypes,
            outputs=self.outputs,
            binary_output=self.binary_output,
            timeout_s=self.timeout_s,
            parameters=self.parameters,
            all_binary=True,
            priority=self.priority,
        )


@dataclass(slots=True)
class Decoded:
    request: InferRequest
    samples: int
    key: tuple[object, ...] | None  # its batch key when a plan holds it; None: the batcher's job


class RequestPlans:
    """The plans of one model version (its signature and batch layout)."""

    def __init__(self, signature: ModelSignature, layout: Layout, max_elements: int) -> None:
        self._signature = signature
        self._layout = layout
        self._max_elements = max_elements
        self._plans: dict[bytes, RequestPlan] = {}

    def __len__(self) -> int:
        return len(self._plans)

    def decode(self, body: bytes, header_length: int | None) -> Decoded:
        """The request in `body`, checked against the signature; raises BadRequestError."""
        if header_length is None or not 0 <= header_length <= len(body):
            return self._decode(body, header_length)
        header = body[:header_length]
        plan = self._plans.get(header)
        if plan is None or plan.body_length != len(body):
            return self._decode(body, header_length, header)
        request = plan.request(body)
        if plan.value_checks:
            check_values(request, self._signature)
        return Decoded(request, plan.samples, plan.key)

    def _decode(
        self, body: bytes, header_length: int | None, header: bytes | None = None
    ) -> Decoded:
        request = decode_request(body, header_length, max_elements=self._max_elements)
        samples = check_structure(request, self._signature)
        check_values(request, self._signature)
        if (
            header is None
            or not request.all_binary
            or request.id is not None
            or "BYTES" in request.datatypes.values()
        ):
            return Decoded(request, samples, None)
        return Decoded(request, samples, self._keep(header, len(body), request, samples).key)

    def _keep(
        self, header: bytes, body_length: int, request: InferRequest, samples: int
    ) -> RequestPlan:
        tensors = []
        offset = len(header)
        for name, array in request.inputs.items():
            tensors.append(_Tensor(name, array.dtype, array.shape, offset))
            offset += array.nbytes
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        plan = self._plans[header] = RequestPlan(
            body_length=body_length,
            tensors=tuple(tensors),
            datatypes=request.datatypes,
            outputs=request.outputs,
            binary_output=request.binary_output,
            timeout_s=request.timeout_s,
            priority=request.priority,
            parameters=request.parameters,
            samples=samples,
            key=batch_key(request.inputs, self._layout),
            value_checks=needs_value_checks(request, self._signature),
        )
        return plan
