"""FastAPI routers, one per resource. Inference is answered by the connection (`infer.py`)."""
