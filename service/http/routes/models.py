"""Model metadata, readiness and serving config: `/v2/models/{m}[/versions/{v}][/ready|/config]`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from service.errors import UnavailableError
from service.http.routes.deps import app_state, json_response
from service.http.state import AppState
from service.lifecycle.served import ServedVersion
from service.metadata import model_metadata as metadata_of
from service.protocol.version import parse_version

router = APIRouter(prefix="/v2/models", tags=["models"])
State = Annotated[AppState, Depends(app_state)]


def _ready(state: AppState, name: str, version: str | None) -> Response:
    try:
        served = state.manager.lookup(name, parse_version(version), split=False)
    except UnavailableError:
        return json_response({"name": name, "ready": False}, status_code=503)
    return json_response({"name": served.name, "ready": True})


def _config(served: ServedVersion) -> dict[str, Any]:
    return {
        "name": served.name,
        "version": str(served.version),
        "max_batch_size": served.signature.max_batch_size,
        "batched": served.signature.batched,
        **served.config.model_dump(mode="json", exclude={"schema_version"}),
    }


@router.get("/{name}")
async def model_metadata(name: str, state: State) -> Response:
    return json_response(metadata_of(state.manager, state.manager.lookup(name, split=False)))


@router.get("/{name}/versions/{version}")
async def version_metadata(name: str, version: str, state: State) -> Response:
    return json_response(
        metadata_of(state.manager, state.manager.lookup(name, parse_version(version)))
    )


@router.get("/{name}/ready")
async def model_ready(name: str, state: State) -> Response:
    return _ready(state, name, None)


@router.get("/{name}/versions/{version}/ready")
async def version_ready(name: str, version: str, state: State) -> Response:
    return _ready(state, name, version)


@router.get("/{name}/config")
async def model_config(name: str, state: State) -> Response:
    return json_response(_config(state.manager.lookup(name, split=False)))


@router.get("/{name}/versions/{version}/config")
async def version_config(name: str, version: str, state: State) -> Response:
    return json_response(_config(state.manager.lookup(name, parse_version(version))))
