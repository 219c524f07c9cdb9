"""`GET /v2`: server metadata and the extensions implemented."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Response

from service.http.routes.deps import json_response

router = APIRouter(tags=["server"])

EXTENSIONS = (
    "binary_tensor_data", "classification", "model_repository", "schedule_policy", "statistics",
)  # fmt: skip


def _version() -> str:
    try:
        return version("inductive")
    except PackageNotFoundError:
        return "0+unknown"


@router.get("/v2")
async def server_metadata() -> Response:
    return json_response({"name": "inductive", "version": _version(), "extensions": EXTENSIONS})
