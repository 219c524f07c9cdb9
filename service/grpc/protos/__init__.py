"""The gRPC door's .proto files and the Python stubs generated from them (.ci/grpc_stubs.py)."""
