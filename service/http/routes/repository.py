"""Triton's model repository extension: index, load, unload — behind the admin token.

Without an admin token in the settings the API is off (403), so that a server never exposes
model control by accident.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from service.errors import ForbiddenError
from service.http.auth import check_token
from service.http.routes.deps import app_state, json_response
from service.http.state import AppState

State = Annotated[AppState, Depends(app_state)]


def require_admin(state: State, authorization: Annotated[str | None, Header()] = None) -> AppState:
    token = state.settings.admin_token
    if token is None:
        raise ForbiddenError("the repository API is off: set INDUCTIVE_ADMIN_TOKEN to enable it")
    check_token(authorization, [token], "the repository API")
    return state


router = APIRouter(prefix="/v2/repository", tags=["repository"])
Admin = Annotated[AppState, Depends(require_admin)]


@router.post("/index")
async def index(state: Admin) -> Response:
    return json_response(state.manager.index())


@router.post("/models/{name}/load")
async def load(name: str, state: Admin) -> Response:
    await state.manager.load(name)
    return json_response({})


@router.post("/models/{name}/unload")
async def unload(name: str, state: Admin) -> Response:
    await state.manager.unload(name)
    return json_response({})
