"""Triton's model repository extension: index, load, unload — behind the admin token.

Without an admin token in the settings the API is off (403), so that a server never exposes
model control by accident.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response

from service.errors import BadRequestError, ForbiddenError
from service.http.auth import check_token
from service.http.routes.deps import app_state, json_response
from service.http.state import AppState

State = Annotated[AppState, Depends(app_state)]


async def require_admin(
    state: State, authorization: Annotated[str | None, Header()] = None
) -> AppState:
    token = state.settings.admin_token
    if token is None:
        raise ForbiddenError("the repository API is off: set INDUCTIVE_ADMIN_TOKEN to enable it")
    check_token(authorization, [token], "the repository API")
    return state


router = APIRouter(prefix="/v2/repository", tags=["repository"])
Admin = Annotated[AppState, Depends(require_admin)]


@router.post("/index")
async def index(request: Request, state: Admin) -> Response:
    """Every known model version with its state; `{"ready": true}` lists the READY ones only."""
    body = await request.body()
    try:
        options = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"index request body is not valid JSON: {exc}") from None
    ready_only = isinstance(options, dict) and options.get("ready") is True
    entries = state.manager.index()
    if ready_only:
        entries = [e for e in entries if e.get("state") == "READY"]
    return json_response(entries)


@router.post("/models/{name}/load")
async def load(name: str, state: Admin) -> Response:
    await state.manager.load(name)
    return json_response({})


@router.post("/models/{name}/unload")
async def unload(name: str, state: Admin) -> Response:
    await state.manager.unload(name)
    return json_response({})
