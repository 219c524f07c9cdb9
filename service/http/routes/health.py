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
    """200 when the server can serve what it is configured to serve (INDUCTIVE_READY_REQUIRES);
    503 otherwise, with the reason and the models not ready in the body."""
    readiness = state.manager.readiness()
    return json_response(readiness.body(), status_code=200 if readiness.ready else 503)
