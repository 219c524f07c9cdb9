"""Inductive's benchmarks: how fast it serves, against what, and how it holds up.

`python -m benchmarks.run` compares, on one machine in one run, raw ONNX Runtime, our service,
the floor and naive FastAPI, and the peer servers users pick (MLServer, KServe, LitServe,
BentoML, each at its best setting), closed-loop and open-loop. `harness/` is what the tests
share with the benchmarks. See benchmarks/README.md for every entry point.
"""
