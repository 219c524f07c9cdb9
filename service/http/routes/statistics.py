"""Triton's statistics extension: `GET /v2/models[/{m}[/versions/{v}]]/stats`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from service.http.routes.deps import app_state, json_response
from service.http.state import AppState
from service.protocol.version import parse_version
from service.statistics import statistics_report

# Included before the models router: `/v2/models/stats` is this route, not model "stats"'s
# metadata (as in Triton; that model's metadata stays at /v2/models/stats/versions/{v}).
router = APIRouter(prefix="/v2/models", tags=["statistics"])
State = Annotated[AppState, Depends(app_state)]


@router.get("/stats")
async def all_statistics(state: State) -> Response:
    return json_response(statistics_report(state.manager))


@router.get("/{name}/stats")
async def model_statistics(name: str, state: State) -> Response:
    return json_response(statistics_report(state.manager, name))


@router.get("/{name}/versions/{version}/stats")
async def version_statistics(name: str, version: str, state: State) -> Response:
    return json_response(statistics_report(state.manager, name, parse_version(version)))
