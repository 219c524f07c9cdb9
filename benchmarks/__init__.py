"""Inductive's benchmark suite (issue 7) and GPU kit (issue 9).

`python -m benchmarks.run` compares, on the same machine in the same run, raw ONNX Runtime, our
service (JSON and binary, batching on and off), a naive FastAPI endpoint and MLServer, with `wrk`
as the one load generator. See benchmarks/README.md.
"""
