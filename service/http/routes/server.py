"""`GET /v2`: server metadata and the extensions implemented."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service import metadata
from service.http.routes.deps import json_response

router = APIRouter(tags=["server"])


@router.get("/v2")
async def server_metadata() -> Response:
    return json_response(metadata.server_metadata())
