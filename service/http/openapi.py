"""The inference route in the OpenAPI document.

`POST …/infer` is answered by the connection itself (`infer.py`), so FastAPI does not know it;
this adds it to `/openapi.json` so that clients and API fuzzers see the whole API.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.model_io.datatypes import NUMPY_DTYPES

_TENSOR_IN = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": list(NUMPY_DTYPES)},
        "parameters": {"type": "object"},
        "data": {"description": "Row-major tensor data, flat or nested."},
    },
}
_OUTPUT_REQUEST = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
}
_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _TENSOR_IN},
        "outputs": {"type": "array", "items": _OUTPUT_REQUEST},
    },
}
_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
    }}},
}  # fmt: skip


def _operation(with_version: bool) -> dict[str, Any]:
    parameters = [{"name": "model_name", "in": "path", "required": True,
                   "schema": {"type": "string"}}]  # fmt: skip
    if with_version:
        parameters.append({"name": "model_version", "in": "path", "required": True,
                           "schema": {"type": "string"}})  # fmt: skip
    return {
        "post": {
            "summary": "Inference (Open Inference Protocol, Triton binary-tensor extension)",
            "operationId": "infer_version" if with_version else "infer",
            "tags": ["inference"],
            "parameters": parameters,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _REQUEST}},
            },
            "responses": {
                "200": {"description": "Inference response (JSON, or JSON header + binary)"},
                **{code: _ERROR for code in ("400", "401", "403", "404", "408", "413", "503")},
            },
        }
    }


def add_infer_paths(api: FastAPI) -> None:
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = build()
            schema["paths"]["/v2/models/{model_name}/infer"] = _operation(False)
            schema["paths"]["/v2/models/{model_name}/versions/{model_version}/infer"] = _operation(
                True
            )
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
