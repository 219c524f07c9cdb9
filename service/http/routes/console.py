"""The web console: static pages at `/console/` and the one JSON document they read.

`GET /console/api/models` describes every known model from the manager's memory: each version's
state and failure reason, the recent state changes, the version policy and aliases the last store
poll read, and for each served version its signature, provider, precision and batching. It reads
nothing from the store and changes nothing; live figures come from `/metrics`, which the page
polls. With API keys configured it needs one, like inference.

The pages are read-only as well: they never call the repository API. Every response carries a
Content-Security-Policy that allows this origin only and no inline script or style.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import RedirectResponse

from service.console import STATIC_DIR
from service.errors import NotFoundError
from service.http.auth import check_token
from service.http.routes.deps import app_state, json_response
from service.http.state import AppState
from service.http.static_files import StaticFiles
from service.lifecycle.served import ServedVersion
from service.metadata import server_version

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "object-src 'none'"
)
_PROVIDER_NAMES = {
    "CPUExecutionProvider": "CPU",
    "CUDAExecutionProvider": "CUDA",
    "TensorrtExecutionProvider": "TensorRT",
}

State = Annotated[AppState, Depends(app_state)]


async def console_reader(
    state: State, authorization: Annotated[str | None, Header()] = None
) -> AppState:
    """The console's data is as private as inference: the same API keys guard it."""
    if state.settings.api_keys:
        check_token(authorization, state.settings.api_keys, "the console")
    return state


Reader = Annotated[AppState, Depends(console_reader)]


def _served(served: ServedVersion) -> dict[str, Any]:
    policy, sig = served.batcher.policy, served.signature
    timeout = policy.default_timeout_s
    return {
        "provider": _PROVIDER_NAMES.get(served.model.providers[0], served.model.providers[0]),
        "precision": served.model.precision,
        "inputs": [t.model_dump() for t in sig.inputs.values()],
        "outputs": [t.model_dump() for t in sig.outputs.values()],
        "optional_inputs": sorted(sig.server_filled),
        "labels": {name: list(labels) for name, labels in sig.labels.items()},
        "batching": {
            "dynamic": policy.merge,
            "max_batch_size": policy.max_batch_size,
            "max_queue_delay_ms": policy.max_queue_delay_s * 1000,
            "preferred_batch_sizes": list(policy.preferred_batch_sizes),
            "max_queue_size": policy.max_queue_size,
            "default_timeout_ms": None if timeout is None else timeout * 1000,
        },
    }


def _model(state: AppState, name: str, entries: list[dict[str, str]]) -> dict[str, Any]:
    manager = state.manager
    served = set(manager.served_versions(name))
    versions = []
    for entry in entries:
        version = int(entry["version"])
        doc: dict[str, Any] = {
            "version": version,
            "state": entry["state"],
            "reason": entry["reason"],
            "served": version in served,
        }
        if version in served:
            doc |= _served(manager.lookup(name, version))
        versions.append(doc)
    policy = manager.policy(name)
    return {
        "name": name,
        "default_version": max(served) if served else None,
        "policy": None if policy is None else policy[0].model_dump(mode="json"),
        "aliases": {} if policy is None else policy[1],
        "versions": versions,
        "history": [
            {"time": e.time, "version": e.version, "state": e.state.value, "reason": e.reason}
            for e in manager.history(name)
        ],
    }


def _overview(state: AppState) -> dict[str, Any]:
    by_model: dict[str, list[dict[str, str]]] = {}
    for entry in state.manager.index():
        entries = by_model.setdefault(entry["name"], [])
        if "version" in entry:  # a model known but never loaded has no version entry
            entries.append(entry)
    settings = state.settings
    return {
        "server": {
            "version": server_version(),
            "ready": state.manager.ready,
            "provider": state.manager.provider,
            "precision": settings.precision,
            "model_control_mode": settings.model_control_mode,
            "api_keys": bool(settings.api_keys),
        },
        "models": [_model(state, name, entries) for name, entries in sorted(by_model.items())],
    }


def router() -> APIRouter:
    """The console's routes; its files are read into memory once, here."""
    files = StaticFiles.from_directory(
        STATIC_DIR, {"content-security-policy": CONTENT_SECURITY_POLICY}
    )
    api = APIRouter(prefix="/console", tags=["console"])

    @api.get("", include_in_schema=False)
    async def console_root() -> Response:
        # The pages name their files relative to /console/, so that the console also works
        # behind a proxy that serves it under a path prefix.
        return RedirectResponse("console/", status_code=308)

    @api.get("/", include_in_schema=False)
    async def console_page(request: Request) -> Response:
        return files.response(request, "index.html")

    @api.get("/api/models")
    async def console_models(state: Reader) -> Response:
        """Every known model: version states with failure reasons, recent state changes,
        version policy and aliases, and each served version's signature, provider, precision
        and batching. Read from the server's memory only (never the store)."""
        response = json_response(_overview(state))
        response.headers["cache-control"] = "no-store"
        return response

    @api.get("/{path:path}", include_in_schema=False)
    async def console_file(path: str, request: Request) -> Response:
        return files.response(request, path)

    return api


def disabled_router() -> APIRouter:
    """With the console off, its address says how to turn it on instead of a bare 404."""
    api = APIRouter(prefix="/console", include_in_schema=False)

    @api.get("")
    @api.get("/{path:path}")
    async def console_off() -> Response:
        raise NotFoundError(
            "the console is off: it is on by default only when the server binds to a loopback "
            "address; set INDUCTIVE_CONSOLE=true to serve it"
        )

    return api
