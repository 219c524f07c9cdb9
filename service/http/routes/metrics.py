"""`GET /metrics`: Prometheus text exposition of the process's registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.http.routes.deps import app_state
from service.http.state import AppState

router = APIRouter(tags=["metrics"])


@router.get("/metrics")
async def metrics(state: Annotated[AppState, Depends(app_state)]) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
