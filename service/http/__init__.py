"""Transport: the ASGI application (raw inference route in front of FastAPI routers)."""

from service.http.app import create_app

__all__ = ["create_app"]
