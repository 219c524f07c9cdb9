"""The serving package: any ONNX model in the store over the Open Inference Protocol.

Layout (what to compute / when / transport, talking through queues):
  settings.py    INDUCTIVE_* settings          http/        transport: raw ASGI inference route
  errors.py      typed errors → HTTP status                  in front of FastAPI routers
  metrics.py     every Prometheus metric       batching/    per-version dynamic batcher
  logging.py     JSON lines with request ids   runtime/     ONNX Runtime providers and sessions
  repository.py  model manager (lifecycle)     protocol/    V2 wire format: decode, validate, encode

Importing this package builds nothing: `service.http.create_app(settings)` does.
"""
