"""Dependencies shared by the routers."""

from __future__ import annotations

import orjson
from fastapi import Request, Response

from service.http.state import AppState


# Handlers and dependencies are `async def` throughout: FastAPI runs plain `def` ones in a
# thread pool, a hop that made probes slow on a loaded core.
async def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.inductive
    return state


def json_response(content: object, status_code: int = 200) -> Response:
    """orjson-encoded JSON (FastAPI's ORJSONResponse is deprecated)."""
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")
