"""FastAPI routers, one per resource. Inference itself is the raw ASGI handler in `infer.py`."""
