"""The serving package: any ONNX model in the store over the Open Inference Protocol.

Layout (what to compute / when / transport, talking through queues; service/README.md):
  settings.py   INDUCTIVE_* settings            http/        HTTP/1.1 connections answering
  errors.py     typed errors → HTTP status                   inference, FastAPI for the rest
  metrics.py    every Prometheus metric         inference/   the front end every door shares
  logging.py    JSON lines with request ids     batching/    per-version dynamic batcher
  model_io/     a served model's signature      runtime/     ONNX Runtime providers, sessions
  lifecycle/    model manager, served versions  protocol/    V2 wire format: decode, validate,
                                                             encode

Importing this package builds nothing: `service.http.app.create_app(settings)` does.
"""
