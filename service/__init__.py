"""The serving package: any ONNX model in the store over the Open Inference Protocol.

Layout (what to compute / when / transport, talking through queues):
  settings.py   INDUCTIVE_* settings            http/       transport: the inference route in
  errors.py     typed errors → HTTP status                  front of FastAPI routers
  metrics.py    every Prometheus metric         batching/   per-version dynamic batcher
  logging.py    JSON lines with request ids     runtime/    ONNX Runtime providers and sessions
  model_io/     a served model's signature      protocol/   V2 wire format: decode, validate,
  lifecycle/    model manager, served versions              encode

Importing this package builds nothing: `service.http.create_app(settings)` does.
"""
