"""`/v2/health/live` and `/v2/health/ready` (Kubernetes liveness and readiness probes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from service.http.routes.deps import app_state, json_response
from service.http.state import AppState

router = APIRouter(prefix="/v2/health", tags=["health"])
State = Annotated[AppState, Depends(app_state)]


@router.get("/live")
async def live() -> Response:
    return json_response({"live": True})


@router.get("/ready")
async def ready(state: State) -> Response:
    """503 while models load at start-up and from the moment a SIGTERM starts the drain."""
    is_ready = state.manager.ready
    return json_response({"ready": is_ready}, status_code=200 if is_ready else 503)
