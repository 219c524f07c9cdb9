"""The gRPC front door: the Open Inference Protocol's `inference.GRPCInferenceService` (with
Triton's repository and statistics RPCs) and `grpc.health.v1.Health`, on the HTTP server's event
loop, sharing its admission, batchers and metrics (server.py)."""
